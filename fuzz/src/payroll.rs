//! Shared by the payroll targets: the sandbox's rails and the invariants of a parsed payroll.

use railgate::api::payrolls::file::Parsed;
use railgate::rails::Rails;
use std::sync::OnceLock;

/// The sandbox's routing table: the mock rail takes every payment it is capable of.
pub fn rails() -> &'static Rails {
    static RAILS: OnceLock<Rails> = OnceLock::new();
    RAILS.get_or_init(|| {
        let cfg = railgate::sandbox::sandbox_config(
            0,
            "sqlite::memory:".to_owned(),
            "http://127.0.0.1:9",
            "mock-secret",
        );
        Rails::from_config(&cfg, railgate::adapters::build).expect("rails")
    })
}

/// A refused file keeps nothing; a kept file's lines are valid, routed and unique.
pub fn check(parsed: &Parsed) {
    let listed = u64::try_from(parsed.errors.len()).unwrap_or(u64::MAX);
    assert!(listed <= parsed.error_count);
    if parsed.error_count > 0 {
        assert!(parsed.items.is_empty(), "a refused file kept items");
    } else {
        // Only a kept file is fingerprinted (a file refused for its header is not read on).
        assert_eq!(parsed.fingerprint.len(), 64);
    }
    let mut refs = std::collections::HashSet::new();
    for item in &parsed.items {
        assert!(item.line >= 1);
        assert!(item.amount.minor() > 0);
        assert!(!item.rail.is_empty());
        assert!(
            refs.insert(item.reference.clone()),
            "duplicate reference kept"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&item.metadata).is_ok());
    }
}
