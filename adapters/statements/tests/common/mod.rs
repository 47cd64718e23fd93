#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing
)]

use railgate_rail::{Currency, Money};
use railgate_statements::{read_all, InputFormat, Statement};
use std::io::BufReader;
use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/statements")
        .join(name)
}

pub fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

pub fn read(name: &str, format: InputFormat) -> Vec<Statement> {
    let f = std::fs::File::open(fixture(name)).expect("fixture");
    read_all(BufReader::new(f), format).expect("parse")
}

pub fn money(s: &str, c: Currency) -> Money {
    Money::parse(s, c).expect("money")
}

/// A reader that makes its bytes as they are asked for, so a test can feed a parser a
/// large file that never exists in memory as a whole.
pub struct Generated<F: FnMut(u64) -> Option<String>> {
    make: F,
    n: u64,
    pending: Vec<u8>,
    pos: usize,
    pub produced: u64,
}

impl<F: FnMut(u64) -> Option<String>> Generated<F> {
    pub fn new(make: F) -> Self {
        Generated {
            make,
            n: 0,
            pending: Vec::new(),
            pos: 0,
            produced: 0,
        }
    }
}

impl<F: FnMut(u64) -> Option<String>> std::io::Read for Generated<F> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.pending.len() {
            match (self.make)(self.n) {
                Some(chunk) => {
                    self.n += 1;
                    self.pending = chunk.into_bytes();
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let rest = &self.pending[self.pos..];
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}
