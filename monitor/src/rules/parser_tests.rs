//! Falco's own parser and compiler test vectors (parser_cases.tsv), run as a table.

use super::ast::{Expr, Operand, Rhs};
use super::parser::parse;

fn cases() -> Vec<(String, String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/falco-rules/parser_cases.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "malformed case line: {l:?}");
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
                cols.get(4).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

/// The mock checks of Falco's compiler test: `c.true` is true, `c.false` is false.
fn mock_eval(e: &Expr) -> bool {
    match e {
        Expr::And(v) => v.iter().all(mock_eval),
        Expr::Or(v) => v.iter().any(mock_eval),
        Expr::Not(e) => !mock_eval(e),
        Expr::Check(c) => match (&c.lhs, &c.rhs) {
            (Operand::Field(f), Rhs::Value { .. }) => match f.name.as_str() {
                "c.true" => true,
                "c.false" => false,
                other => panic!("unexpected mock field {other}"),
            },
            other => panic!("unexpected mock check {other:?}"),
        },
        Expr::Macro { name, .. } => panic!("unexpected macro {name}"),
    }
}

#[test]
fn parser_conformance_table() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "expected the full table, got {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for (kind, expected, expr, note) in &cases {
        let outcome = match kind.as_str() {
            "PARSE" => {
                let got = parse(expr);
                let ok = match expected.as_str() {
                    "ACCEPT" => got.is_ok(),
                    "REJECT" => got.is_err(),
                    e => panic!("unknown expectation {e}"),
                };
                (ok, format!("{got:?}"))
            }
            "EVAL" => match parse(expr) {
                Ok(e) => {
                    let v = mock_eval(&e);
                    (v == (expected == "TRUE"), format!("evaluated to {v}"))
                }
                Err(e) => (false, format!("parse error {e}")),
            },
            "COMPILE" => {
                let got = super::Filter::compile(expr);
                let ok = match expected.as_str() {
                    "OK" => got.is_ok(),
                    "ERROR" => got.is_err(),
                    e => panic!("unknown expectation {e}"),
                };
                (ok, format!("{:?}", got.err()))
            }
            k => panic!("unknown case kind {k}"),
        };
        if !outcome.0 {
            failures.push(format!(
                "{kind} {expected} {expr:?} ({note}): {}",
                outcome.1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let e = parse("a.a=1 or b.b=2 and c").expect("parses");
    let Expr::Or(items) = e else {
        panic!("expected or at the top: {e:?}")
    };
    assert!(matches!(items[1], Expr::And(_)));
}

#[test]
fn quoted_escapes_are_resolved() {
    let e = parse(r#"a.b = "x\ty\x41\"""#).expect("parses");
    let Expr::Check(c) = e else { panic!() };
    assert_eq!(
        c.rhs,
        Rhs::Value {
            value: "x\tyA\"".into(),
            pos: 6
        }
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}a.b=1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(super::Filter::compile(&deep).is_err());
    let nots = format!("{}a.b=1", "not ".repeat(5000));
    assert!(super::Filter::compile(&nots).is_err());
    // Falco's limit is 1000 levels: just below it still loads.
    let ok = format!(
        "{}proc.name=a{}",
        "(proc.pid=1 and ".repeat(400),
        ")".repeat(400)
    );
    assert!(super::Filter::compile(&ok).is_ok());
}
