//! Per-run device configuration: the MAC, fault knobs, the device
//! mutant, the backend and whether the DMA monitor is on.
//!
//! Everything here is plain data (serde-friendly) so the VMM can take it
//! from a scenario table or the command line and log it with the run.

use crate::abi::DeviceMutant;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The MAC used when the configuration does not name one: locally
/// administered, unicast (bit 1 of the first octet set, bit 0 clear).
pub const DEFAULT_MAC: [u8; 6] = [0x02, 0x4e, 0x50, 0x00, 0x00, 0x01];

/// An invalid address the EEPROM presents instead of the real MAC
/// (scenario 1: the driver must reject it or use a random one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidMac {
    /// 00:00:00:00:00:00.
    Zero,
    /// A group address (bit 0 of the first octet set).
    Multicast,
    /// ff:ff:ff:ff:ff:ff.
    Broadcast,
}

impl InvalidMac {
    /// The bytes the EEPROM returns for this knob.
    pub fn bytes(self) -> [u8; 6] {
        match self {
            Self::Zero => [0; 6],
            Self::Multicast => [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
            Self::Broadcast => [0xff; 6],
        }
    }
}

/// Where transmitted frames go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendConfig {
    /// Into the device's own RX ring.
    #[default]
    Loopback,
    /// Nowhere (counted and logged only).
    Null,
    /// Appended to a pcap file at this path.
    Pcap(String),
}

/// Where [`NicConfig::irq_in_window`] counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowStart {
    /// The guest's stop-enter marker (ndo_stop entry).
    StopEnter,
    /// The guest's open-enter marker (ndo_open entry).
    OpenEnter,
    /// The driver's napi-disable marker (`args[1]` = 1: its
    /// napi_disable in stop returned).
    NapiDisable,
}

/// Interrupts forced into a window (issue 14): after the n-th `start`
/// marker of the run (n from 0), the device latches `causes` at the n-th
/// BAR0 register write after it (n = 0: at the marker itself), as if a
/// completion had just been written back, and sends the vectors of the
/// enabled ones. A run of N open/stop cycles thus sweeps the interrupt
/// over the first N writes of the stop (or open) sequence. Nothing is
/// raised while a reset is running (a real device completes nothing
/// then). With `at_write` every window forces at that one write instead:
/// a point whose catch depends on the vCPU schedule gets a try per cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqWindow {
    /// The marker the count starts from.
    pub start: WindowStart,
    /// `regs::INT_*` causes to latch.
    pub causes: u32,
    /// Force at this write in every window (None: the n-th in window n).
    #[serde(default)]
    pub at_write: Option<u64>,
}

/// Everything that makes one run's device differ from another's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NicConfig {
    /// The permanent MAC address stored in the EEPROM.
    pub mac: [u8; 6],
    /// Present an invalid address instead of `mac`.
    pub invalid_mac: Option<InvalidMac>,
    /// How long a reset keeps `STATUS_RESETTING` set, in virtual µs.
    pub reset_delay_us: u64,
    /// The N-th reset (1-based, counting every `CTRL_RESET` write since
    /// power-on) never finishes: `STATUS_RESETTING` stays set for good
    /// (a wedged device, for the driver's bounded reset wait).
    #[serde(default)]
    pub hang_nth_reset: Option<u64>,
    /// How long an EEPROM word read takes, in virtual µs: `EEPROM_DONE`
    /// and the data read back only this long after the read started
    /// (0: at once; `u64::MAX`: never, a dead EEPROM for the driver's
    /// bounded read).
    #[serde(default)]
    pub eeprom_delay_us: u64,
    /// Stop fetching TX descriptors (so nothing completes) once this many
    /// packets have completed; one-shot, cleared by the next reset
    /// (scenarios 5 and 19).
    pub stall_completions_after: Option<u64>,
    /// Drop the Nth TX-completion MSI (1-based; scenario 15).
    pub drop_nth_tx_irq: Option<u64>,
    /// Keep polling descriptor rings by DMA every few µs while TX/RX are
    /// enabled, as r8169 hardware does (scenario 4).
    pub dma_until_disabled: bool,
    /// Write TX completions only when the driver writes `TEST_COMPLETE`
    /// (scenario 10).
    pub complete_on_request: bool,
    /// Force an interrupt into the stop or open sequence (see
    /// [`IrqWindow`]).
    #[serde(default)]
    pub irq_in_window: Option<IrqWindow>,
    /// The deliberately broken behaviour, if any.
    #[serde(serialize_with = "ser_mutant", deserialize_with = "de_mutant")]
    pub mutant: DeviceMutant,
    /// Frame sink.
    pub backend: BackendConfig,
    /// Also write every transmitted frame to this pcap file, whatever the
    /// backend (a tap: with loopback the capture is what the RX side got).
    #[serde(default)]
    pub capture: Option<String>,
    /// Log and check every DMA (the oracle). Off only for benchmarks.
    pub monitor: bool,
}

impl Default for NicConfig {
    fn default() -> Self {
        Self {
            mac: DEFAULT_MAC,
            invalid_mac: None,
            reset_delay_us: 0,
            hang_nth_reset: None,
            eeprom_delay_us: 0,
            stall_completions_after: None,
            drop_nth_tx_irq: None,
            dma_until_disabled: false,
            complete_on_request: false,
            irq_in_window: None,
            mutant: DeviceMutant::None,
            backend: BackendConfig::Loopback,
            capture: None,
            monitor: true,
        }
    }
}

impl NicConfig {
    /// The six bytes the EEPROM presents.
    pub fn eeprom_mac(&self) -> [u8; 6] {
        self.invalid_mac.map_or(self.mac, InvalidMac::bytes)
    }
}

fn ser_mutant<S: Serializer>(m: &DeviceMutant, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

fn de_mutant<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceMutant, D::Error> {
    let s = String::deserialize(d)?;
    DeviceMutant::from_name(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown device mutant {s:?}")))
}
