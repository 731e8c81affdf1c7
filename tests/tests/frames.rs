//! The default scenario's frames are real Ethernet/IPv4/UDP (issue 12):
//! broadcast from the driver's MAC, a valid IPv4 header checksum, and a
//! payload carrying (seq, pool offset, seed) followed by the pool's bytes,
//! which the host recomputes from the seed. tcpdump reads them as UDP.

use nicproof_tests::*;
use std::fs::File;
use std::process::Command;

fn frames(pcap: &std::path::Path) -> Vec<Vec<u8>> {
    let mut reader = pcap_file::pcap::PcapReader::new(File::open(pcap).expect("capture written"))
        .expect("a pcap file");
    let mut v = Vec::new();
    while let Some(p) = reader.next_packet() {
        v.push(p.expect("a whole packet").data.into_owned());
    }
    v
}

#[test]
fn every_frame_is_udp_with_its_sequence_number_and_the_seeded_pattern() {
    for seed in ["0", "7"] {
        let path = std::env::temp_dir().join(format!(
            "nicproof-frames-{}-{seed}.pcap",
            std::process::id()
        ));
        let p = path.to_string_lossy().into_owned();
        let r = run(&guest_image(), &["--seed", seed, "--pcap", &p]);
        assert_eq!(r.outcome(), "passed", "{}", r.stdout);
        let mac = r.markers("probe-exit")[0]["args"][1]
            .as_u64()
            .unwrap()
            .to_le_bytes();
        let got = frames(&path);
        assert_eq!(got.len(), 64);
        for (i, f) in got.iter().enumerate() {
            let seq = vmm::payload::check_frame(f, seed.parse().unwrap())
                .unwrap_or_else(|e| panic!("frame {i}: {e}"));
            assert_eq!(seq as usize, i, "frames leave in sequence");
            assert_eq!(f[6..12], mac[..6], "source is the driver's MAC");
        }
        // tcpdump (installed by `make tools`) prints them as UDP, IP id = sequence number.
        let out = Command::new("tcpdump")
            .args(["-nvr", &p])
            .output()
            .expect("tcpdump is missing: `make tools` installs it");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.matches("192.0.2.1.20048 > 192.0.2.255.9: UDP, length")
                .count(),
            64,
            "{text}"
        );
        assert!(
            text.contains("id 5,") && !text.contains("bad cksum"),
            "{text}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
