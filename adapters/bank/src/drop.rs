//! The file-drop transport: one outbound and one inbound folder per bank, as host-to-host
//! SFTP folders are laid out.
//!
//! Outbound files appear whole or not at all: the bytes go to a hidden temporary name in the
//! same folder, are flushed, and are then moved to the final name with `hard_link`, which,
//! unlike `rename`, refuses to replace an existing file. A file's name derives from its
//! `MsgId`, so the same payments can never be written twice, even by two workers at once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The file is now in the outbound folder.
    Written(PathBuf),
    /// A file of that name was already there; it was left as it was.
    AlreadyThere(PathBuf),
}

#[derive(Debug, Clone)]
pub struct FileDrop {
    pub outbound: PathBuf,
    pub inbound: PathBuf,
}

impl FileDrop {
    /// Creates both folders when missing.
    pub fn open(outbound: &Path, inbound: &Path) -> std::io::Result<FileDrop> {
        fs::create_dir_all(outbound)?;
        fs::create_dir_all(inbound)?;
        Ok(FileDrop {
            outbound: outbound.to_owned(),
            inbound: inbound.to_owned(),
        })
    }

    /// Writes `bytes` as `dir/name` atomically, unless `name` exists already.
    pub fn write_outbound(&self, name: &str, bytes: &[u8]) -> std::io::Result<Written> {
        write_once(&self.outbound, name, bytes)
    }

    /// The finished files in the inbound folder (temporary and hidden names skipped), by name.
    pub fn inbound_files(&self) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        finished_files(&self.inbound)
    }
}

/// Writes `dir/name` atomically and never over an existing file.
pub fn write_once(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<Written> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\\') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad file name",
        ));
    }
    let target = dir.join(name);
    if target.exists() {
        return Ok(Written::AlreadyThere(target));
    }
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let linked = fs::hard_link(&tmp, &target);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Written::Written(target)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Written::AlreadyThere(target))
        }
        Err(e) => Err(e),
    }
}

/// Finished files of a folder, sorted by name.
pub fn finished_files(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") || !entry.file_type()?.is_file() {
            continue;
        }
        match fs::read(entry.path()) {
            Ok(bytes) => out.push((name, bytes)),
            // Picked up by the other side between listing and reading.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_once_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let d = FileDrop::open(&dir.path().join("out"), &dir.path().join("in")).unwrap();
        assert!(matches!(
            d.write_outbound("A.xml", b"one").unwrap(),
            Written::Written(_)
        ));
        assert!(matches!(
            d.write_outbound("A.xml", b"two").unwrap(),
            Written::AlreadyThere(_)
        ));
        assert_eq!(fs::read(d.outbound.join("A.xml")).unwrap(), b"one");
        let names: Vec<_> = finished_files(&d.outbound)
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(names, vec!["A.xml".to_owned()]);
        assert!(d.write_outbound("../x", b"").is_err());
    }
}
