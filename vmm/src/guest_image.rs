//! What the VMM boots: a static x86-64 kernel ELF (the guest of
//! `make guest`). linux-loader loads any ELF64 and checks little else, so
//! an AArch64 image ran as x86 code and a PIE such as `/bin/ls` failed on
//! its entry; the header is checked here first, and the error says what
//! the image is instead.

/// The advice every refused image gets.
pub const NEEDS: &str = "needs a static x86-64 kernel ELF (build it with make guest)";

const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 0x3e;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Check `image` (the whole file); Err says what is wrong, ending in
/// [`NEEDS`].
pub fn check(image: &[u8]) -> Result<(), String> {
    what_is_wrong(image).map_or(Ok(()), |w| Err(format!("{w}: {NEEDS}")))
}

fn what_is_wrong(b: &[u8]) -> Option<String> {
    if b.len() < 64 || b[..4] != *b"\x7fELF" {
        return Some("not an ELF file".into());
    }
    if b[4] != 2 {
        return Some(format!("ELF class {} (not 64-bit)", b[4]));
    }
    if b[5] != 1 {
        return Some("big-endian ELF".into());
    }
    let (e_type, machine) = (u16_at(b, 16)?, u16_at(b, 18)?);
    if machine != EM_X86_64 {
        return Some(format!(
            "ELF machine {machine} (not x86-64, which is {EM_X86_64})"
        ));
    }
    if e_type != ET_EXEC {
        return Some(format!(
            "ELF type {e_type} (not an executable: a shared object or PIE is type 3)"
        ));
    }
    let entry = u64_at(b, 24)?;
    let (phoff, phentsize, phnum) = (u64_at(b, 32)?, u16_at(b, 54)?, u16_at(b, 56)?);
    let mut entry_loaded = false;
    for i in 0..u64::from(phnum) {
        let at = usize::try_from(phoff.checked_add(i * u64::from(phentsize))?).ok()?;
        let (Some(kind), Some(vaddr), Some(memsz)) =
            (u32_at(b, at), u64_at(b, at + 16), u64_at(b, at + 40))
        else {
            return Some(format!("program header {i} beyond the file"));
        };
        match kind {
            PT_INTERP | PT_DYNAMIC => return Some("dynamically linked".into()),
            PT_LOAD if entry >= vaddr && entry - vaddr < memsz => entry_loaded = true,
            _ => {}
        }
    }
    (!entry_loaded || entry == 0).then(|| format!("entry point {entry:#x} is in no loaded segment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_checked_field_by_field() {
        assert!(check(b"this is not an ELF image")
            .unwrap_err()
            .starts_with("not an ELF file: "));
        let mut e = vec![0u8; 64 + 56];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        e[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        e[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&1u16.to_le_bytes());
        e[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
        e[64 + 16..64 + 24].copy_from_slice(&0x20_0000u64.to_le_bytes());
        e[64 + 40..64 + 48].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(check(&e), Ok(()));
        let bad = |off: usize, v: &[u8]| {
            let mut x = e.clone();
            x[off..off + v.len()].copy_from_slice(v);
            check(&x).unwrap_err()
        };
        assert!(bad(18, &183u16.to_le_bytes()).contains("machine 183"));
        assert!(bad(4, &[1]).contains("class 1"));
        assert!(bad(5, &[2]).contains("big-endian"));
        assert!(bad(16, &3u16.to_le_bytes()).contains("type 3"));
        assert!(bad(24, &0u64.to_le_bytes()).contains("entry point 0x0"));
        assert!(bad(64, &PT_INTERP.to_le_bytes()).contains("dynamically linked"));
        assert!(bad(56, &9u16.to_le_bytes()).contains("beyond the file"));
        assert!(bad(18, &183u16.to_le_bytes()).ends_with(NEEDS));
    }
}
