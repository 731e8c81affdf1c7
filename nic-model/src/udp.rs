//! The frames the default scenario sends: real Ethernet II / IPv4 / UDP,
//! so a capture reads as UDP in tcpdump or Wireshark. One definition for
//! the guest (which builds the header, no byte loops: a template and a
//! few stores) and the host (which parses and checks it). `no_std`.
//!
//! Layout of the linear head the guest copies into each skb
//! ([`HEAD_LEN`] bytes), followed by the payload-pool fragments:
//!
//! | bytes  | what |
//! |--------|------|
//! | 0..6   | destination MAC: broadcast |
//! | 6..12  | source MAC: the driver's |
//! | 12..14 | ethertype 0x0800 (IPv4) |
//! | 14..34 | IPv4: no options, DF, TTL 64, UDP, id = the frame's sequence number (low 16 bits), [`SRC_IP`] -> [`DST_IP`], valid header checksum |
//! | 34..42 | UDP: port [`SRC_PORT`] -> [`DST_PORT`], length, checksum 0 ("none", allowed over IPv4) |
//! | 42..46 | payload: sequence number (u32, big endian) |
//! | 46..50 | payload: byte offset of the fragments in the payload pool (u32, big endian) |
//! | 50..58 | payload: the run's seed (u64, big endian) |
//!
//! The fragments that follow are the pool's bytes from that offset on
//! (the VMM fills the pool from the seed), so the host can recompute
//! every byte of a frame from (seed, offset).

/// Bytes of Ethernet + IPv4 + UDP headers.
pub const HEADERS_LEN: usize = 14 + 20 + 8;
/// The head the guest builds: headers plus the (seq, offset, seed) prefix.
pub const HEAD_LEN: usize = HEADERS_LEN + 16;
/// Source IPv4 address (TEST-NET-1, RFC 5737).
pub const SRC_IP: [u8; 4] = [192, 0, 2, 1];
/// Destination IPv4 address: TEST-NET-1's broadcast, matching the MAC.
pub const DST_IP: [u8; 4] = [192, 0, 2, 255];
/// UDP source port ("NP").
pub const SRC_PORT: u16 = 0x4e50;
/// UDP destination port (discard).
pub const DST_PORT: u16 = 9;

/// The head with every field that does not change per frame filled in.
const TEMPLATE: [u8; HEAD_LEN] = {
    let mut h = [0u8; HEAD_LEN];
    let mut i = 0;
    while i < 6 {
        h[i] = 0xff;
        i += 1;
    }
    h[12] = 0x08;
    h[14] = 0x45; // IPv4, 5-word header
    h[20] = 0x40; // don't fragment
    h[22] = 64; // TTL
    h[23] = 17; // UDP
    let mut k = 0;
    while k < 4 {
        h[26 + k] = SRC_IP[k];
        h[30 + k] = DST_IP[k];
        k += 1;
    }
    h[34] = (SRC_PORT >> 8) as u8;
    h[35] = SRC_PORT as u8;
    h[36] = (DST_PORT >> 8) as u8;
    h[37] = DST_PORT as u8;
    h
};

/// One's-complement sum of the template's IPv4 header words (checksum
/// and the per-frame length and id fields are zero in it).
const TEMPLATE_SUM: u32 = {
    let mut s = 0u32;
    let mut i = 14;
    while i < 34 {
        s += ((TEMPLATE[i] as u32) << 8) | TEMPLATE[i + 1] as u32;
        i += 2;
    }
    s
};

fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The head of frame `seq` whose `frags_len` payload-pool bytes start at
/// pool offset `pool_off`, from a driver whose MAC is `mac`.
pub fn head(mac: [u8; 6], seq: u32, pool_off: u32, seed: u64, frags_len: u16) -> [u8; HEAD_LEN] {
    let mut h = TEMPLATE;
    h[6..12].copy_from_slice(&mac);
    let ip_len = (20 + 8 + 16) + frags_len;
    let id = seq as u16;
    h[16..18].copy_from_slice(&ip_len.to_be_bytes());
    h[18..20].copy_from_slice(&id.to_be_bytes());
    let sum = fold(TEMPLATE_SUM + u32::from(ip_len) + u32::from(id));
    h[24..26].copy_from_slice(&sum.to_be_bytes());
    h[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    h[42..46].copy_from_slice(&seq.to_be_bytes());
    h[46..50].copy_from_slice(&pool_off.to_be_bytes());
    h[50..58].copy_from_slice(&seed.to_be_bytes());
    h
}

/// What a frame of this format says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFrame {
    /// The sender's MAC.
    pub src_mac: [u8; 6],
    /// The frame's sequence number (also its IP id).
    pub seq: u32,
    /// Offset of its fragments in the payload pool.
    pub pool_off: u32,
    /// The run's seed.
    pub seed: u64,
    /// Bytes after the head (the payload-pool bytes).
    pub frags_len: usize,
}

/// Why a frame is not one of ours, or is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than the head.
    TooShort,
    /// Not an IPv4 ethertype.
    NotIpv4,
    /// Not an IPv4 header of 20 bytes (version 4, IHL 5).
    BadIpHeader,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// IP or UDP length disagrees with the frame.
    BadLength,
    /// Not UDP.
    NotUdp,
    /// Not our source and destination ports.
    BadPorts,
    /// Not to the broadcast MAC.
    NotBroadcast,
}

/// Parse and check a frame: Ethernet broadcast, IPv4 with a valid header
/// checksum and consistent lengths, UDP between our ports, and the
/// (seq, offset, seed) prefix.
pub fn parse(f: &[u8]) -> Result<UdpFrame, FrameError> {
    if f.len() < HEAD_LEN {
        return Err(FrameError::TooShort);
    }
    if f[..6] != [0xff; 6] {
        return Err(FrameError::NotBroadcast);
    }
    if f[12..14] != [0x08, 0x00] {
        return Err(FrameError::NotIpv4);
    }
    if f[14] != 0x45 {
        return Err(FrameError::BadIpHeader);
    }
    let mut sum = 0u32;
    for w in f[14..34].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if fold(sum) != 0 {
        return Err(FrameError::BadIpChecksum);
    }
    let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let udp_len = usize::from(u16::from_be_bytes([f[38], f[39]]));
    if ip_len != f.len() - 14 || udp_len != ip_len - 20 {
        return Err(FrameError::BadLength);
    }
    if f[23] != 17 {
        return Err(FrameError::NotUdp);
    }
    if u16::from_be_bytes([f[34], f[35]]) != SRC_PORT
        || u16::from_be_bytes([f[36], f[37]]) != DST_PORT
    {
        return Err(FrameError::BadPorts);
    }
    let be32 = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&f[50..58]);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&f[6..12]);
    Ok(UdpFrame {
        src_mac,
        seq: be32(42),
        pool_off: be32(46),
        seed: u64::from_be_bytes(seed),
        frags_len: f.len() - HEAD_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_parses_back_with_a_valid_checksum() {
        let mac = [0x02, 0, 0, 0, 0, 7];
        let h = head(mac, 0x1_0005, 4096, 42, 100);
        let mut frame = h.to_vec();
        frame.extend(core::iter::repeat_n(0xab, 100));
        let p = parse(&frame).unwrap();
        assert_eq!(
            p,
            UdpFrame {
                src_mac: mac,
                seq: 0x1_0005,
                pool_off: 4096,
                seed: 42,
                frags_len: 100
            }
        );
        // IP id is the sequence number's low 16 bits.
        assert_eq!(&frame[18..20], &[0, 5]);
        // The checksum is the RFC 1071 one: recomputed from zero here.
        let mut hdr = frame[14..34].to_vec();
        hdr[10] = 0;
        hdr[11] = 0;
        let s: u32 = hdr
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        assert_eq!(fold(s).to_be_bytes(), [frame[24], frame[25]]);
        // Any corruption of the IP header or lengths is found.
        let mut bad = frame.clone();
        bad[22] = 63;
        assert_eq!(parse(&bad), Err(FrameError::BadIpChecksum));
        assert_eq!(parse(&frame[..frame.len() - 1]), Err(FrameError::BadLength));
        let mut uni = frame.clone();
        uni[0] = 2;
        assert_eq!(parse(&uni), Err(FrameError::NotBroadcast));
        assert_eq!(parse(&frame[..20]), Err(FrameError::TooShort));
    }
}
