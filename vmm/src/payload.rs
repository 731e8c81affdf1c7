//! The payload pool pattern: the host fills `layout::PAYLOAD_BASE..+SIZE`
//! at boot so the guest builds frames from addresses and lengths only.
//! Word `i` (8 bytes, little endian) is a hash of (seed, i), so anyone can
//! recompute any byte without replaying a generator from the start.

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern's 64-bit word number `index` for `seed`.
pub const fn word(seed: u64, index: u64) -> u64 {
    mix(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index.wrapping_add(0x632b_e59b_d9b4_e019))
}

/// The pattern bytes at byte offset `offset` of the pool, `len` long.
pub fn bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|o| word(seed, o / 8).to_le_bytes()[(o % 8) as usize])
        .collect()
}

/// The whole pool of `size` bytes (size rounded down to whole words).
pub fn fill(seed: u64, size: u64) -> Vec<u8> {
    let mut v = vec![0u8; (size / 8 * 8) as usize];
    fill_at(seed, 0, &mut v);
    v
}

/// Fill `buf` with the pattern starting at word `first_word` (whole
/// words only; a trailing partial word is left untouched).
pub fn fill_at(seed: u64, first_word: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&word(seed, first_word + i as u64).to_le_bytes());
    }
}

/// Check one transmitted frame of the default scenario
/// (`nic_model::udp`): its headers and checksum, that it carries `seed`,
/// and that every byte after the head is the pool's pattern at the
/// offset it names. Returns the frame's sequence number.
pub fn check_frame(frame: &[u8], seed: u64) -> Result<u32, String> {
    use nic_model::udp;
    let f = udp::parse(frame).map_err(|e| format!("not a nicproof UDP frame: {e:?}"))?;
    if f.seed != seed {
        return Err(format!(
            "frame {} carries seed {}, the run's is {seed}",
            f.seq, f.seed
        ));
    }
    if bytes(seed, u64::from(f.pool_off), f.frags_len) != frame[udp::HEAD_LEN..] {
        return Err(format!(
            "frame {}: payload differs from the pool at offset {:#x}",
            f.seq, f.pool_off
        ));
    }
    Ok(f.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_checked_against_its_seed_and_pool_offset() {
        let head = nic_model::udp::head([2, 0, 0, 0, 0, 1], 9, 100, 5, 40);
        let mut f = head.to_vec();
        f.extend(bytes(5, 100, 40));
        assert_eq!(check_frame(&f, 5), Ok(9));
        assert!(check_frame(&f, 6).unwrap_err().contains("seed 5"));
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(check_frame(&f, 5).unwrap_err().contains("payload differs"));
    }

    #[test]
    fn any_slice_can_be_recomputed_and_seeds_differ() {
        let pool = fill(5, 4096);
        assert_eq!(bytes(5, 13, 100), pool[13..113].to_vec());
        let mut part = [0u8; 24];
        fill_at(5, 10, &mut part);
        assert_eq!(part.to_vec(), pool[80..104].to_vec());
        assert_eq!(bytes(5, 0, 8), word(5, 0).to_le_bytes().to_vec());
        assert_ne!(fill(6, 64), pool[..64].to_vec());
        // Not trivially periodic: no two of the first words are equal.
        let mut w: Vec<u64> = (0..512).map(|i| word(5, i)).collect();
        w.sort_unstable();
        w.dedup();
        assert_eq!(w.len(), 512);
    }
}
