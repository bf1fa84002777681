//! A plugin's wasm as the loader meets it: its size, its first bytes and the key the caches
//! know it by, taken without keeping the bytes; the bytes themselves only when they are
//! compiled.
//!
//! Every load takes the key, also when the compiled component is in the cache, so it is on
//! the path of every deploy: blake3 of an interpreter's 18 MB takes ~3 ms on one core where
//! sha256 took ~11, and reading through one reused buffer instead of into a fresh 18 MB vector
//! saves the page faults of that vector (together about 40% of a cached load).

use std::borrow::Cow;
use std::io::Read;

use super::{PluginError, Source, builtin, builtin_names};

/// What the loader knows of a plugin's wasm before compiling it.
#[derive(Debug, Clone)]
pub(super) struct Fingerprint {
    /// blake3 of the bytes, hex: the key of the in-process and on-disk caches.
    pub(super) key: String,
    /// Size in bytes.
    pub(super) len: usize,
    /// The first 8 bytes (fewer when the file is shorter): magic, version and layer.
    header: Vec<u8>,
}

impl Fingerprint {
    /// The fingerprint of `bytes`.
    pub(super) fn of_bytes(bytes: &[u8]) -> Self {
        Fingerprint {
            key: blake3::hash(bytes).to_hex().to_string(),
            len: bytes.len(),
            header: bytes[..bytes.len().min(8)].to_vec(),
        }
    }

    /// The fingerprint of `source`, read through one buffer (the bytes are not kept).
    pub(super) fn of(source: &Source) -> Result<Self, PluginError> {
        let path = match source {
            Source::Builtin(_) => return read(source).map(|bytes| Self::of_bytes(&bytes)),
            Source::File(path) => path,
        };
        let read_error = |source| PluginError::Read {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0; 1 << 20];
        let mut header = Vec::with_capacity(8);
        let mut len = 0;
        loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            let chunk = &buffer[..n];
            let wanted = 8 - header.len();
            header.extend_from_slice(&chunk[..n.min(wanted)]);
            hasher.update(chunk);
            len += n;
        }
        Ok(Fingerprint {
            key: hasher.finalize().to_hex().to_string(),
            len,
            header,
        })
    }

    /// Refuses what is not a WebAssembly component, before anything tries to compile it.
    pub(super) fn check_component(&self, plugin: &str) -> Result<(), PluginError> {
        if !self.header.starts_with(b"\0asm") {
            return Err(PluginError::NotWasm {
                plugin: plugin.to_owned(),
            });
        }
        // Bytes 4..8: version + layer. Layer 0 is a core module, layer 1 a component.
        if self.header.get(6..8) == Some(&[0, 0]) {
            return Err(PluginError::CoreModule {
                plugin: plugin.to_owned(),
            });
        }
        Ok(())
    }
}

/// The whole bytes of `source`.
pub(super) fn read(source: &Source) -> Result<Cow<'static, [u8]>, PluginError> {
    match source {
        Source::Builtin(name) => {
            builtin::bytes(name)
                .map(Cow::Borrowed)
                .ok_or_else(|| PluginError::UnknownBuiltin {
                    name: name.clone(),
                    known: builtin_names().join(", "),
                })
        }
        Source::File(path) => {
            std::fs::read(path)
                .map(Cow::Owned)
                .map_err(|source| PluginError::Read {
                    path: path.clone(),
                    source,
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_through_the_buffer_has_the_fingerprint_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // Over two buffers, so the header and the hash cross a read boundary.
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        bytes.extend((0..(2 << 20) + 5).map(|i: u32| (i % 251) as u8));
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, &bytes).unwrap();
        let read = Fingerprint::of(&Source::File(path)).unwrap();
        let direct = Fingerprint::of_bytes(&bytes);
        assert_eq!(read.key, direct.key);
        assert_eq!(read.len, bytes.len());
        assert_eq!(read.header, b"\0asm\x0d\0\x01\0");
        assert!(read.check_component("p").is_ok());
    }

    #[test]
    fn short_files_core_modules_and_other_files_are_refused_by_name() {
        let refused = |bytes: &[u8]| Fingerprint::of_bytes(bytes).check_component("p.wasm");
        assert!(matches!(refused(b""), Err(PluginError::NotWasm { .. })));
        assert!(matches!(refused(b"\0as"), Err(PluginError::NotWasm { .. })));
        assert!(matches!(
            refused(b"#!/bin/sh\n"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            refused(b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule { .. })
        ));
        // Bytes 6..8 missing: not a core module; wasmtime says what is wrong with it.
        assert!(refused(b"\0asm\x0d\0").is_ok());
    }
}
