//! The bank crate's one error type.

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The payments cannot be put in a file as they are (mixed currencies, a missing name,
    /// an identifier outside the bank's character set...).
    #[error("invalid payment: {0}")]
    Invalid(String),
    #[error("malformed bank file: {0}")]
    Malformed(String),
    #[error("file drop: {0}")]
    Io(#[from] std::io::Error),
}

impl From<quick_xml::Error> for BankError {
    fn from(e: quick_xml::Error) -> Self {
        BankError::Malformed(e.to_string())
    }
}
