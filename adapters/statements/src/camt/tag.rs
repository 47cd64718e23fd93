//! The camt element names the reader looks at, as an enum so that paths can be matched with
//! slice patterns and no string is allocated per element.

macro_rules! tags {
    ($($name:ident),* $(,)?) => {
        // The variants are the XML element names, spelled as the schema spells them.
        #[allow(clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Tag { $($name,)* Other }

        impl Tag {
            pub(crate) fn from_local_name(name: &[u8]) -> Tag {
                match name {
                    $(n if n == stringify!($name).as_bytes() => Tag::$name,)*
                    _ => Tag::Other,
                }
            }

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Tag::$name => stringify!($name),)*
                    Tag::Other => "?",
                }
            }
        }
    };
}

tags!(
    Document,
    BkToCstmrStmt,
    BkToCstmrDbtCdtNtfctn,
    GrpHdr,
    MsgId,
    CreDtTm,
    Stmt,
    Ntfctn,
    Id,
    ElctrncSeqNb,
    LglSeqNb,
    FrToDt,
    FrDtTm,
    ToDtTm,
    CpyDplctInd,
    Acct,
    IBAN,
    Othr,
    Ccy,
    Bal,
    Tp,
    CdOrPrtry,
    Cd,
    Amt,
    CdtDbtInd,
    Dt,
    DtTm,
    Ntry,
    RvslInd,
    Sts,
    BookgDt,
    ValDt,
    AcctSvcrRef,
    BkTxCd,
    Domn,
    Fmly,
    SubFmlyCd,
    AmtDtls,
    InstdAmt,
    TxAmt,
    Chrgs,
    TtlChrgsAndTaxAmt,
    Rcrd,
    NtryDtls,
    Btch,
    PmtInfId,
    NbOfTxs,
    TtlAmt,
    TxDtls,
    Refs,
    InstrId,
    EndToEndId,
    TxId,
    UETR,
    RltdPties,
    Dbtr,
    Cdtr,
    Pty,
    Nm,
    DbtrAcct,
    CdtrAcct,
    RmtInf,
    Ustrd,
    Strd,
    CdtrRefInf,
    Ref,
    RtrInf,
    Rsn,
    AddtlInf,
    AddtlNtryInf,
    AddtlTxInf,
);

/// `a/b/c` for error messages.
pub(crate) fn path_string(path: &[Tag]) -> String {
    path.iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join("/")
}
