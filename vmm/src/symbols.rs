//! The guest's symbols and line tables (its ELF's DWARF, read with the
//! addr2line crate): every guest address the VMM reports (a CPU
//! exception's rip, a triple fault's registers, each vCPU's rip at a
//! timeout) is printed with its function and file:line, inlined frames
//! included, so nobody has to run `addr2line` by hand.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why the guest's symbols could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    /// The ELF or its DWARF could not be loaded.
    #[error("reading symbols of {path}: {why}")]
    Load {
        /// The guest image.
        path: String,
        /// What the loader said.
        why: String,
    },
}

/// One frame at an address: a function and where in the source it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Demangled function name, without the hash suffix.
    pub function: String,
    /// Source file, shortened (see [`short_path`]); empty if unknown.
    #[serde(default)]
    pub file: String,
    /// Line in `file`, 0 if unknown.
    #[serde(default)]
    pub line: u32,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.function)?;
        if !self.file.is_empty() {
            write!(f, " at {}", self.file)?;
            if self.line != 0 {
                write!(f, ":{}", self.line)?;
            }
        }
        Ok(())
    }
}

/// A guest address the report names, with what the symbols say of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeLocation {
    /// What the address is (`cpu 0 rip`).
    pub what: String,
    /// The guest virtual address.
    pub addr: u64,
    /// Innermost first: an inlined function, then the functions it was
    /// inlined into, ending with the real (out-of-line) function. Empty
    /// if no symbol covers the address.
    #[serde(default)]
    pub frames: Vec<Frame>,
    /// Why there are no frames (no symbols, address outside the image).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl fmt::Display for CodeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:#x}", self.what, self.addr)?;
        match self.frames.split_first() {
            None if self.note.is_empty() => f.write_str(": no symbol covers it"),
            None => write!(f, ": {}", self.note),
            Some((first, rest)) => {
                write!(f, " in {first}")?;
                for fr in rest {
                    write!(f, "\n    inlined into {fr}")?;
                }
                Ok(())
            }
        }
    }
}

/// The guest ELF's symbols and line tables.
pub struct Symbols {
    loader: addr2line::Loader,
}

impl Symbols {
    /// Read `path` (the guest ELF the run booted).
    pub fn load(path: &Path) -> Result<Self, SymbolsError> {
        let loader = addr2line::Loader::new(path).map_err(|e| SymbolsError::Load {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Ok(Self { loader })
    }

    /// The frames at `addr`, innermost first (empty if no symbol covers it).
    pub fn frames(&self, addr: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if let Ok(mut it) = self.loader.find_frames(addr) {
            while let Ok(Some(fr)) = it.next() {
                let function = fr
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|s| s.into_owned()))
                    .unwrap_or_default();
                let (file, line) = fr
                    .location
                    .map(|l| {
                        (
                            l.file.map(short_path).unwrap_or_default(),
                            l.line.unwrap_or(0),
                        )
                    })
                    .unwrap_or_default();
                out.push(Frame {
                    function,
                    file,
                    line,
                });
            }
        }
        // No DWARF for this address: the symbol table may still name it.
        if out.iter().all(|f| f.function.is_empty()) {
            if let Some(name) = self.loader.find_symbol(addr) {
                let function = addr2line::demangle_auto(name.into(), None).into_owned();
                match out.first_mut() {
                    Some(f) => f.function = function,
                    None => out.push(Frame {
                        function,
                        ..Frame::default()
                    }),
                }
            }
        }
        out.retain(|f| !f.function.is_empty() || !f.file.is_empty());
        for f in &mut out {
            if f.function.is_empty() {
                f.function = "?".into();
            }
        }
        out
    }

    /// `addr`, described as `what`.
    pub fn locate(&self, what: &str, addr: u64) -> CodeLocation {
        CodeLocation {
            what: what.into(),
            addr,
            frames: self.frames(addr),
            note: String::new(),
        }
    }
}

/// Locate every `(what, addr)` in the guest image at `guest`; if its
/// symbols cannot be read, each location says why.
pub fn locate_all(guest: &Path, addrs: &[(String, u64)]) -> Vec<CodeLocation> {
    if addrs.is_empty() {
        return Vec::new();
    }
    match Symbols::load(guest) {
        Ok(s) => addrs.iter().map(|(w, a)| s.locate(w, *a)).collect(),
        Err(e) => addrs
            .iter()
            .map(|(w, a)| CodeLocation {
                what: w.clone(),
                addr: *a,
                frames: Vec::new(),
                note: e.to_string(),
            })
            .collect(),
    }
}

/// A source path as people read it: the part from the workspace's crate
/// directory on (`guest-driver/src/main.rs`), or the standard library's
/// path from `library/` on (`rustc library/core/src/ptr/mod.rs`); other
/// paths unchanged.
pub fn short_path(path: &str) -> String {
    for krate in ["guest-driver/", "nic-model/", "vmm/"] {
        if let Some(i) = path.rfind(&format!("/{krate}")) {
            return path[i + 1..].to_string();
        }
    }
    if path.starts_with("/rustc/") {
        if let Some(i) = path.find("/library/") {
            return format!("rustc {}", &path[i + 1..]);
        }
    }
    if path.contains("/.cargo/registry/src/") {
        if let Some(i) = path
            .find("/src/")
            .and_then(|s| path[s + 5..].find('/').map(|j| s + 5 + j))
        {
            return path[i + 1..].to_string();
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shortened_to_what_people_read() {
        assert_eq!(
            short_path("/work/wt/x/guest-driver/src/main.rs"),
            "guest-driver/src/main.rs"
        );
        assert_eq!(
            short_path(
                "/rustc/17067e9ac6d7e98f18d4ae5c4a9a2cd5fbc2c9e0/library/core/src/ptr/mod.rs"
            ),
            "rustc library/core/src/ptr/mod.rs"
        );
        assert_eq!(
            short_path("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/x86_64-0.15.2/src/lib.rs"),
            "x86_64-0.15.2/src/lib.rs"
        );
        assert_eq!(short_path("src/lib.rs"), "src/lib.rs");
    }

    #[test]
    fn a_location_prints_its_frames_innermost_first() {
        let l = CodeLocation {
            what: "cpu 0 rip".into(),
            addr: 0x20b2f1,
            frames: vec![
                Frame {
                    function: "core::ptr::read_volatile".into(),
                    file: "rustc library/core/src/ptr/mod.rs".into(),
                    line: 1707,
                },
                Frame {
                    function: "nicproof_guest::bad_guest".into(),
                    file: "guest-driver/src/main.rs".into(),
                    line: 300,
                },
            ],
            note: String::new(),
        };
        assert_eq!(
            l.to_string(),
            "cpu 0 rip 0x20b2f1 in core::ptr::read_volatile at rustc library/core/src/ptr/mod.rs:1707\n    \
             inlined into nicproof_guest::bad_guest at guest-driver/src/main.rs:300"
        );
        let none = CodeLocation {
            what: "cpu 1 rip".into(),
            addr: 5,
            ..Default::default()
        };
        assert_eq!(none.to_string(), "cpu 1 rip 0x5: no symbol covers it");
    }

    #[test]
    fn a_missing_image_says_so_for_every_address() {
        let l = locate_all(Path::new("/nonexistent/guest"), &[("cpu 0 rip".into(), 1)]);
        assert_eq!(l.len(), 1);
        assert!(l[0].frames.is_empty());
        assert!(l[0].note.contains("/nonexistent/guest"), "{}", l[0].note);
        assert!(l[0]
            .to_string()
            .starts_with("cpu 0 rip 0x1: reading symbols of /nonexistent/guest"));
    }

    /// The VMM's own test binary has DWARF (debug = 1 in release too):
    /// this function's address resolves to this file and this function.
    #[test]
    fn an_address_in_a_real_elf_resolves_to_function_and_line() {
        let exe = std::env::current_exe().unwrap();
        let s = Symbols::load(&exe).unwrap();
        assert_eq!(marker_function("x", 1), vec![("x".to_string(), 1)]);
        // The link-time address, as the DWARF has it (the guest is linked
        // where it runs, so its rips need no such step).
        let addr = object_symbol_address(&exe, "marker_function")
            .expect("marker_function in the symbol table");
        let frames = s.frames(addr);
        let last = frames.last().expect("frames");
        assert!(last.function.ends_with("marker_function"), "{frames:?}");
        assert!(last.file.ends_with("vmm/src/symbols.rs"), "{frames:?}");
        assert!(last.line > 0);
    }

    #[inline(never)]
    fn marker_function(w: &str, a: u64) -> Vec<(String, u64)> {
        vec![(w.to_string(), a)]
    }

    fn object_symbol_address(exe: &Path, suffix: &str) -> Option<u64> {
        use object::{Object, ObjectSymbol};
        let data = std::fs::read(exe).ok()?;
        let file = object::File::parse(&*data).ok()?;
        file.symbols().find_map(|s| {
            let n = s.name().ok()?;
            let d = addr2line::demangle_auto(n.into(), None);
            (d.ends_with(suffix) && d.contains("symbols")).then(|| s.address())
        })
    }
}
