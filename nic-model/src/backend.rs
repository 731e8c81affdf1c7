//! Frame sinks behind the transmitter. Loopback is handled by the
//! device itself (it needs the RX ring); this module holds the sinks
//! that leave the device.

use crate::config::BackendConfig;
use crate::error::NicError;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::fs::File;
use std::time::Duration;

/// A configured frame sink.
pub enum Backend {
    /// Frames go back into the device's RX ring.
    Loopback,
    /// Frames are dropped (still logged and counted).
    Null,
    /// Frames are appended to a pcap file, stamped with virtual time.
    /// Unbuffered on purpose: a VMM that exits with `process::exit`
    /// runs no destructors, and a capture must not lose its tail.
    Pcap(Box<PcapWriter<File>>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "Loopback",
            Self::Null => "Null",
            Self::Pcap(_) => "Pcap",
        })
    }
}

impl Backend {
    /// Open the sink a configuration names.
    pub fn open(cfg: &BackendConfig) -> Result<Self, NicError> {
        Ok(match cfg {
            BackendConfig::Loopback => Self::Loopback,
            BackendConfig::Null => Self::Null,
            BackendConfig::Pcap(path) => {
                let f = File::create(path).map_err(|source| NicError::CreateFile {
                    path: path.clone(),
                    source,
                })?;
                let w = PcapWriter::new(f).map_err(|source| NicError::Pcap {
                    path: path.clone(),
                    source,
                })?;
                Self::Pcap(Box::new(w))
            }
        })
    }

    /// Hand the sink one frame (loopback is the device's job, so a no-op
    /// here). A write error is returned: the device records the first
    /// and the run reports its capture as incomplete.
    pub fn send(&mut self, frame: &[u8], now_ns: u64) -> Result<(), pcap_file::PcapError> {
        if let Self::Pcap(w) = self {
            // Frames are at most MAX_FRAME_LEN, so the cast is exact.
            let pkt = PcapPacket::new(Duration::from_nanos(now_ns), frame.len() as u32, frame);
            w.write_packet(&pkt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_backend_writes_readable_file() {
        let path = std::env::temp_dir().join(format!("nicproof-pcap-{}.pcap", std::process::id()));
        let p = path.to_string_lossy().into_owned();
        {
            let mut b = Backend::open(&BackendConfig::Pcap(p.clone())).unwrap();
            b.send(&[1, 2, 3, 4], 1_000).expect("write frame");
            b.send(&[5; 60], 2_000).expect("write frame");
        }
        let mut r = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        let a = r.next_packet().unwrap().unwrap();
        assert_eq!(&a.data[..], &[1, 2, 3, 4]);
        let b = r.next_packet().unwrap().unwrap();
        assert_eq!(b.data.len(), 60);
        assert_eq!(b.timestamp, Duration::from_nanos(2_000));
        assert!(r.next_packet().is_none());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn pcap_backend_reports_bad_path() {
        let e = Backend::open(&BackendConfig::Pcap("/nonexistent-dir/x.pcap".into())).unwrap_err();
        assert!(matches!(e, NicError::CreateFile { .. }));
    }
}
