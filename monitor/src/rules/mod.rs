//! The rule engine: Falco's rule language, loaded from YAML, evaluated on `Event`s.
