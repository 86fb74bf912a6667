//! Splitting an image reference (`registry:5000/ns/app:tag@sha256:...`) into Falco's
//! `container.image.repository`, `.tag` and `.digest`.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// The reference is kept as written (no `docker.io/library/` added): Falco shows what the
    /// runtime reports. A `:` is a tag separator only after the last `/`, so a registry port
    /// is not a tag.
    pub fn parse(reference: &str) -> ImageRef {
        let (name, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string()).filter(|d| !d.is_empty())),
            None => (reference, None),
        };
        let after_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[after_slash..].rfind(':') {
            Some(i) => {
                let colon = after_slash + i;
                (
                    &name[..colon],
                    Some(name[colon + 1..].to_string()).filter(|t| !t.is_empty()),
                )
            }
            None => (name, None),
        };
        ImageRef {
            repository: repository.to_string(),
            tag,
            digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_forms() {
        let cases = [
            ("redis", "redis", None, None),
            ("redis:7", "redis", Some("7"), None),
            (
                "docker.io/library/redis:7.2-alpine",
                "docker.io/library/redis",
                Some("7.2-alpine"),
                None,
            ),
            ("localhost:5000/app", "localhost:5000/app", None, None),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app",
                Some("v1"),
                None,
            ),
            ("app@sha256:abcd", "app", None, Some("sha256:abcd")),
            (
                "reg:5000/a/b:1@sha256:ef",
                "reg:5000/a/b",
                Some("1"),
                Some("sha256:ef"),
            ),
            ("", "", None, None),
        ];
        for (input, repo, tag, digest) in cases {
            let r = ImageRef::parse(input);
            assert_eq!(r.repository, repo, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
        }
    }
}
