//! The content hash of an uploaded statement: SHA-256 of its exact bytes.
//!
//! The gateway stores it with the statement; the same file uploaded again has the same hash
//! and is recognised before any line is counted twice. [`HashingReader`] computes it while
//! the parser reads, so a large upload is read once.

use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, BufRead, Read};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        ContentHash(Sha256::digest(bytes).into())
    }

    /// Hashes everything `reader` yields, in bounded memory.
    pub fn of_reader<R: Read>(mut reader: R) -> io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            let Some(chunk) = buf.get(..n) else { break };
            if n == 0 {
                break;
            }
            hasher.update(chunk);
        }
        Ok(ContentHash(hasher.finalize().into()))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters: the form stored and shown.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(ContentHash(arr))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// A reader that hashes every byte that passes through it.
///
/// Wrap the upload in it, give it to a parser, then call [`HashingReader::finish`]; the parser
/// must have read to the end (the camt and CSV readers do when their iterator is exhausted;
/// `finish` drains whatever is left so the hash is always of the whole input).
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: BufRead> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Number of bytes seen so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads what is left and returns the hash of the whole input with its length.
    pub fn finish(mut self) -> io::Result<(ContentHash, u64)> {
        loop {
            let available = self.fill_buf()?.len();
            if available == 0 {
                break;
            }
            self.consume(available);
        }
        Ok((ContentHash(self.hasher.finalize().into()), self.bytes))
    }
}

impl<R: BufRead> Read for HashingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if let Some(chunk) = out.get(..n) {
            self.hasher.update(chunk);
        }
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HashingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // Hash exactly what the consumer takes, so bytes looked at twice are hashed once.
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(chunk) = buf.get(..amt) {
                self.hasher.update(chunk);
            }
        }
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(amt).unwrap_or(u64::MAX));
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(
            ContentHash::of_bytes(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reader_matches_bytes() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let h = ContentHash::of_reader(&data[..]).unwrap();
        assert_eq!(h, ContentHash::of_bytes(&data));
        let mut hr = HashingReader::new(io::BufReader::with_capacity(777, &data[..]));
        let mut first = [0u8; 1000];
        hr.read_exact(&mut first).unwrap();
        let (h2, n) = hr.finish().unwrap();
        assert_eq!(h2, h);
        assert_eq!(n, 200_000);
        assert_eq!(ContentHash::from_hex(&h.to_hex()), Some(h));
    }
}
