//! `nicproof run --pcap FILE`: the capture holds exactly the frames the
//! device transmitted, in order, byte for byte (checked against the
//! device's own `tx-frame` events: length and content hash).

use nic_model::frame_hash;
use nicproof_tests::*;
use std::fs::File;

#[test]
fn the_pcap_holds_every_transmitted_frame_in_order() {
    let path = std::env::temp_dir().join(format!("nicproof-capture-{}.pcap", std::process::id()));
    let p = path.to_string_lossy().into_owned();
    let r = run(&guest_image(), &["--scenario", "default", "--pcap", &p]);
    assert_eq!(r.outcome(), "passed", "{}\n{}", r.stdout, r.stderr);
    let sent: Vec<(u64, u64)> = r
        .events
        .iter()
        .filter(|e| e["event"] == "tx-frame")
        .map(|e| (e["len"].as_u64().unwrap(), e["hash"].as_u64().unwrap()))
        .collect();
    let mut reader = pcap_file::pcap::PcapReader::new(File::open(&path).expect("capture written"))
        .expect("a pcap file");
    let mut got = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.expect("a whole packet");
        got.push((pkt.data.len() as u64, frame_hash(&pkt.data)));
    }
    let _ = std::fs::remove_file(&path);
    assert!(
        sent.len() >= 64,
        "the default scenario sends 64 frames: {}",
        sent.len()
    );
    assert_eq!(got, sent);
}

#[test]
fn an_unwritable_pcap_path_is_a_host_error_that_names_it() {
    let r = run(
        &guest_image(),
        &["--scenario", "default", "--pcap", "/nonexistent-dir/x.pcap"],
    );
    assert_eq!(r.outcome(), "host-error", "{}", r.stdout);
    assert!(r.stdout.contains("/nonexistent-dir/x.pcap"), "{}", r.stdout);
}
