//! XSD validation with `xmllint` (Debian's libxml2-utils), shared by the bank crate's tests and
//! the gateway's (which include this file by path).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// xmllint (installed by scripts/test-setup.sh). Under CI a missing validator fails
/// the test; on a developer machine without it the check is skipped with a message.
pub fn xmllint() -> Option<PathBuf> {
    let find = || {
        Command::new("sh")
            .args(["-c", "command -v xmllint"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    let found = find();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "xmllint (libxml2-utils) is required under CI: scripts/test-setup.sh installs it"
        );
        eprintln!("xmllint not available: XSD validation skipped");
    }
    found
}

/// Asserts that `xml` is valid against the schema file `schema` (skipped without xmllint).
pub fn validate(xml: &[u8], schema: &Path) {
    let Some(lint) = xmllint() else { return };
    let dir = std::env::temp_dir().join(format!("xsd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("document.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new(lint)
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{} validation failed:\n{}\n{}",
        schema.display(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(xml)
    );
}
