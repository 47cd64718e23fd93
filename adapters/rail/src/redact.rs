//! Hiding what must not be logged or shown from the paths rails call us on.

/// What a secret is replaced by wherever a path may be logged, stored or shown.
pub const REDACTED: &str = "***";

/// The path with its first non-empty segment replaced by [`REDACTED`]: for rails that
/// authenticate callbacks by a secret first path segment (`/s3cr3t/b2c/result` becomes
/// `/***/b2c/result`). Empty segments are skipped as the adapters skip them when they read
/// the secret, so `//s3cr3t/...` hides the secret too.
pub fn redact_first_segment(path: &str) -> String {
    let mut done = false;
    path.split('/')
        .map(|s| {
            if !done && !s.is_empty() {
                done = true;
                REDACTED
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_first_segment_only() {
        assert_eq!(
            redact_first_segment("/s3cr3t/b2c/result"),
            "/***/b2c/result"
        );
        assert_eq!(redact_first_segment("//s3cr3t/x"), "//***/x");
        assert_eq!(redact_first_segment("/s3cr3t"), "/***");
        assert_eq!(redact_first_segment("/"), "/");
        assert_eq!(redact_first_segment(""), "");
    }
}
