//! The one catalogue of rules: every rule a run can be failed on, declared
//! once. Each [`Rule`] has its stable name (what findings, violations and
//! the matrix's expectations carry), where it is judged ([`Judge`]), its
//! row of the report's table of checks ([`Row`]), its statement in one
//! plain sentence (what `nicproof explain` and `nicproof list` print) and,
//! where it enforces one, its line of Linux's "Softnet Driver Issues"
//! (Documentation/networking/driver.rst) as a [`Quote`].
//!
//! Adding a rule: add one line to the `catalogue!` table below; the
//! device monitor, the host oracles, the checks table, explain, the
//! matrix and `nicproof list` all take it from here. The vmm's catalogue
//! test then asks for a matrix case that catches it.
//!
//! `no_std`: the guest may name rules too.

/// Where a rule is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Judge {
    /// Live, as the access happens: the device's DMA monitor
    /// (`monitor::Violation`), or the host's device wrapper (rx-content).
    DeviceMonitor,
    /// After the run, by a host oracle over the whole event log.
    HostOracle,
    /// By the guest's own checks (its `oracle-fail` texts and verdict);
    /// a `guest:<prefix>` rule is a guest text starting with `<prefix>`.
    Guest,
}

impl Judge {
    /// Stable name, as `nicproof list` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Judge::DeviceMonitor => "device-monitor",
            Judge::HostOracle => "host-oracle",
            Judge::Guest => "guest",
        }
    }
}

/// A line of "Softnet Driver Issues", with the section it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// `transmit 1`, `close/stop 1`, ...
    pub section: &'static str,
    /// The words of the document.
    pub text: &'static str,
}

/// The document's lines the rules enforce.
pub mod quote {
    use super::Quote;

    /// transmit 1: never BUSY.
    pub const BUSY: Quote = Quote {
        section: "transmit 1",
        text: "The ndo_start_xmit method must not return NETDEV_TX_BUSY under any normal circumstances.",
    };
    /// transmit 1: maintain the queue.
    pub const QUEUE: Quote = Quote {
        section: "transmit 1",
        text: "Instead it must maintain the queue properly.",
    };
    /// transmit 2: cloned skbs.
    pub const CLONE: Quote = Quote {
        section: "transmit 2",
        text: "An ndo_start_xmit method must not modify the shared parts of a cloned SKB.",
    };
    /// transmit 3: free every skb in finite time.
    pub const FREE: Quote = Quote {
        section: "transmit 3",
        text: "once you return NETDEV_TX_OK from your ndo_start_xmit method, it is your driver's \
               responsibility to free up the SKB and in some finite amount of time.",
    };
    /// transmit 3: no packet hangs in the ring.
    pub const HANG: Quote = Quote {
        section: "transmit 3",
        text: "it is not allowed for your TX mitigation scheme to let TX packets \"hang out\" in the TX \
               ring unreclaimed forever if no new TX packets are sent.",
    };
    /// transmit 3: after BUSY, no reference.
    pub const BUSY_REF: Quote = Quote {
        section: "transmit 3",
        text: "If you return NETDEV_TX_BUSY from the ndo_start_xmit method, you must not keep any \
               reference to that SKB and you must not attempt to free it up.",
    };
    /// probing 1: verify the MAC.
    pub const MAC: Quote = Quote {
        section: "probing 1",
        text: "Any hardware layer address you obtain for your device should be verified.",
    };
    /// close/stop 1: quiet after stop.
    pub const QUIESCE: Quote = Quote {
        section: "close/stop 1",
        text: "After the ndo_stop routine has been called, the hardware must not receive or transmit any data.",
    };
    /// close/stop 1: abort in-flight packets.
    pub const ABORT: Quote = Quote {
        section: "close/stop 1",
        text: "All in flight packets must be aborted.",
    };
    /// close/stop 1: wait for the reset.
    pub const RESET: Quote = Quote {
        section: "close/stop 1",
        text: "If necessary, poll or wait for completion of any reset commands.",
    };
    /// close/stop 2: unregister closes.
    pub const AUTO_CLOSE: Quote = Quote {
        section: "close/stop 2",
        text: "The ndo_stop routine will be called by unregister_netdevice if device is still UP.",
    };

    /// Every quote, for the test that they are the document's words.
    pub const ALL: &[Quote] = &[
        BUSY, QUEUE, CLONE, FREE, HANG, BUSY_REF, MAC, QUIESCE, ABORT, RESET, AUTO_CLOSE,
    ];
}

macro_rules! rows {
    ($(
        $(#[$doc:meta])*
        $var:ident = $title:literal;
    )*) => {
        /// The rows of the report's table of checks, in report order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Row {
            $(#[doc = $title] $(#[$doc])* $var,)*
        }

        impl Row {
            /// Every row, in report order.
            pub const ALL: &'static [Row] = &[$(Row::$var,)*];

            /// The row's check, as the report prints it.
            pub const fn title(self) -> &'static str {
                match self { $(Row::$var => $title,)* }
            }

            /// Position in [`Row::ALL`] (the table's order).
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

// Each row once: its name and the check it prints (also its doc).
rows! {
    DmaAfterStop = "no DMA after stop-exit";
    IrqAfterStop = "no interrupt after stop-exit";
    DoorbellAfterStop = "no doorbell after stop-exit";
    DmaMapped = "every DMA inside a mapped range";
    Device = "device obeys enable, reset and posting";
    Maps = "every DMA map unmapped once";
    Skb = "every skb freed exactly once";
    Bql = "BQL back to zero";
    Busy = "BUSY returned zero times";
    Frames = "delivered frames match sent bytes";
    AutoClose = "unregister stops an UP device once";
    Mac = "registered MAC is valid";
    DeviceError = "device latched no unexpected error";
    DoorbellPending = "every posted descriptor gets a doorbell";
    Irq = "interrupts re-armed by NAPI, off at stop";
    /// The guest's verdict, and every finding no other row claims.
    Verdict = "guest verdict and other oracles";
}

/// Statements several rules share (a host oracle and the guest check of
/// the same rule say the same thing).
mod says {
    pub const QUIESCE_DOORBELL: &str =
        "The driver must not ring a doorbell (start the hardware) after its ndo_stop returned.";
    pub const RESET_WAIT: &str =
        "ndo_stop must wait for the device's reset to finish before it unmaps buffers or returns.";
    pub const MAPS: &str =
        "Every DMA mapping is unmapped exactly once, and none is left when the device is stopped.";
    pub const SKB: &str = "Every skb the driver accepted is freed exactly once, in finite time.";
    pub const BQL: &str =
        "The bytes completed to BQL equal the bytes sent, so BQL is back to zero when the ring is empty.";
    pub const DOORBELL: &str =
        "Posted descriptors get their doorbell, so no packet waits in the ring with nothing to send it.";
    pub const NO_BUSY: &str =
        "ndo_start_xmit stops the queue in advance and never returns NETDEV_TX_BUSY in normal operation.";
    pub const LOST_WAKE: &str =
        "A stopped TX queue is woken once the ring has room again (no lost wake-up).";
    pub const AUTO_CLOSE: &str =
        "unregister_netdevice calls ndo_stop exactly once if the device is UP, never if it is down.";
    pub const MAC: &str =
        "The driver registers only a valid unicast MAC address (is_valid_ether_addr).";
    pub const WATCHDOG: &str =
        "A TX queue stuck longer than the watchdog timeout gets ndo_tx_timeout and recovers.";
    pub const GUEST: &str = "The guest's own checks pass (its verdict says which failed).";
}

macro_rules! catalogue {
    ($(
        $(#[$doc:meta])*
        $var:ident = $name:literal, $judge:ident, $row:ident, $statement:expr, $quote:expr;
    )*) => {
        /// Every rule a run can be failed on (see the module docs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($(#[$doc])* $var,)*
        }

        impl Rule {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [Rule] = &[$(Rule::$var,)*];

            /// Stable name: what findings and violations carry, and what
            /// the matrix prints (`guest:<prefix>` for a guest text rule).
            pub const fn name(self) -> &'static str {
                match self { $(Rule::$var => $name,)* }
            }

            /// Where the rule is judged.
            pub const fn judge(self) -> Judge {
                match self { $(Rule::$var => Judge::$judge,)* }
            }

            /// The report row a finding of this rule fails.
            pub const fn row(self) -> Row {
                match self { $(Rule::$var => Row::$row,)* }
            }

            /// The rule in one plain sentence.
            pub const fn statement(self) -> &'static str {
                match self { $(Rule::$var => $statement,)* }
            }

            /// Its line of "Softnet Driver Issues", if it enforces one.
            pub const fn quote(self) -> Option<Quote> {
                match self { $(Rule::$var => $quote,)* }
            }
        }
    };
}

use quote::*;

catalogue! {
    // Judged live by the device's DMA monitor (nic_model::monitor).
    /// A DMA after the driver's stop-exit marker, before the next open.
    DmaAfterStop = "dma-after-stop", DeviceMonitor, DmaAfterStop,
        "The device must not read or write guest memory after the driver's ndo_stop returned.", Some(QUIESCE);
    /// An interrupt message delivered after stop-exit.
    IrqAfterStop = "irq-after-stop", DeviceMonitor, IrqAfterStop,
        "The device must not raise an interrupt after the driver's ndo_stop returned.", Some(QUIESCE);
    /// A DMA outside every range the driver has mapped.
    DmaUnmapped = "dma-unmapped", DeviceMonitor, DmaMapped,
        "The device reads and writes only memory the driver has mapped for DMA (an IOMMU would fault).", None;
    /// A device write into a to-device mapping, or a read of a from-device one.
    DmaWrongDirection = "dma-wrong-direction", DeviceMonitor, DmaMapped,
        "The device writes only from-device mappings and reads only to-device ones.", None;
    /// A DMA attempted with bus mastering off (the device blocks it).
    DmaBusMasterOff = "dma-bus-master-off", DeviceMonitor, Device,
        "The device makes no DMA while PCI bus mastering is off.", None;
    /// A DMA for a ring whose enable bit is clear.
    DmaDeviceDisabled = "dma-device-disabled", DeviceMonitor, Device,
        "The device makes no DMA for a ring whose enable bit is clear.", None;
    /// A DMA while a reset is in progress.
    DmaDuringReset = "dma-during-reset", DeviceMonitor, Device,
        "The device makes no DMA while a reset is in progress.", None;
    /// A DMA address outside guest RAM (the device blocks it).
    DmaOutsideRam = "dma-outside-ram", DeviceMonitor, DmaMapped,
        "A DMA address outside guest RAM is refused and latched as a device error.", None;
    /// A DMA address inside the device's own BAR (the device blocks it).
    DmaIntoBar = "dma-into-bar", DeviceMonitor, DmaMapped,
        "A DMA address inside the device's own registers is refused and latched as a device error.", None;
    /// A descriptor fetched out of order or beyond what the driver posted.
    DescUnposted = "desc-unposted", DeviceMonitor, Device,
        "The device fetches only descriptors the driver posted (before TX_TAIL), in order.", None;
    /// A completion written for a descriptor the device never fetched.
    CompletionUnposted = "completion-unposted", DeviceMonitor, Device,
        "The device completes only descriptors it fetched.", None;
    /// An interrupt raised for a cause the driver has not enabled.
    IrqWhileDisabled = "irq-while-disabled", DeviceMonitor, Device,
        "The device raises an interrupt only for a cause the driver enabled.", None;
    /// A reset that did not return the device to its reset state.
    ResetIneffective = "reset-ineffective", DeviceMonitor, Device,
        "A reset returns the device to its reset state.", None;
    /// An MSI-X message aimed outside the local APIC window (the device
    /// refuses to send it).
    MsiBadAddress = "msi-bad-address", DeviceMonitor, Device,
        "The device sends MSI-X messages only into the local APIC window; any other address is refused.", None;
    /// A dma-unmap of a range that is not mapped.
    UnmapUnmapped = "unmap-unmapped", DeviceMonitor, Maps, says::MAPS, Some(ABORT);
    /// A TX completion or RX frame written back while the device was
    /// enabled whose interrupt cause was not latched within
    /// `device::SIGNAL_BOUND_NS`, or that stop found pending with no
    /// coalescing timer to ever signal it (the mvneta 01b23da3607d hang).
    CompletionUnsignalled = "completion-unsignalled", DeviceMonitor, Irq,
        "Every completion the device writes back is signalled by an interrupt in bounded time.", Some(HANG);
    /// A frame delivered to the stack whose bytes differ from those sent
    /// (judged by the host's device wrapper as the frame arrives).
    RxContent = "rx-content", DeviceMonitor, Frames,
        "Every frame delivered to the stack holds exactly the bytes that were sent.", None;

    // Judged after the run by a host oracle (vmm/src/oracles.rs).
    /// A TX or RX tail write between stop-exit and the next open.
    DoorbellAfterStop = "doorbell-after-stop", HostOracle, DoorbellAfterStop,
        says::QUIESCE_DOORBELL, Some(QUIESCE);
    /// Descriptors posted but not covered by a doorbell at batch end or stop.
    DoorbellPending = "doorbell-pending", HostOracle, DoorbellPending, says::DOORBELL, Some(HANG);
    /// BQL's completed, sent and queued bytes disagree.
    BqlBalance = "bql-balance", HostOracle, Bql, says::BQL, None;
    /// The guest's BQL stall detector reported a stall.
    BqlStall = "bql-stall", HostOracle, Bql,
        "A running TX queue gets its completions in time: BQL's stall detector (dql_check_stall) reports no stall.", Some(HANG);
    /// An skb freed twice, freed unknown, or live at the end.
    SkbLedger = "skb-ledger", HostOracle, Skb, says::SKB, Some(FREE);
    /// A DMA map made twice, an unmap of nothing or of the wrong length,
    /// or a map live at the end.
    DmaMaps = "dma-maps", HostOracle, Maps, says::MAPS, Some(ABORT);
    /// The device's own count of live maps at the end is not zero.
    DeviceLiveMaps = "device-live-maps", HostOracle, Maps, says::MAPS, Some(ABORT);
    /// unregister called stop the wrong number of times.
    AutoClose = "auto-close", HostOracle, AutoClose, says::AUTO_CLOSE, Some(AUTO_CLOSE);
    /// start_xmit returned BUSY.
    NoBusy = "no-busy", HostOracle, Busy, says::NO_BUSY, Some(BUSY);
    /// The queue was stopped or woken on the wrong side of its thresholds.
    QueueThresholds = "queue-thresholds", HostOracle, Busy,
        "The TX queue is stopped only when a worst-case packet no longer fits, and woken only above the start threshold.", Some(QUEUE);
    /// The registered MAC is invalid or not the EEPROM's valid one.
    MacAddress = "mac-address", HostOracle, Mac, says::MAC, Some(MAC);
    /// Something was unmapped, or stop returned, while a reset ran.
    ResetWait = "reset-wait", HostOracle, Verdict, says::RESET_WAIT, Some(RESET);
    /// The device latched an error the scenario did not provoke.
    DeviceError = "device-error", HostOracle, DeviceError,
        "The device latches no error the scenario did not provoke on purpose.", None;
    /// A NAPI poll completed under budget with its causes left masked.
    IrqReenable = "irq-reenable", HostOracle, Irq,
        "A NAPI poll that completes under budget enables again the interrupt causes it masked.", Some(HANG);
    /// An interrupt cause enabled after stop-exit, before the next open.
    IrqEnabledAfterStop = "irq-enabled-after-stop", HostOracle, Irq,
        "No interrupt cause is enabled from the return of ndo_stop until the next open.", Some(QUIESCE);
    /// The interrupt handler touched the device while NAPI was disabled.
    IrqAfterNapiDisable = "irq-after-napi-disable", HostOracle, Irq,
        "Once napi_disable returned in stop, an interrupt handler leaves the device alone until open enables NAPI again.", Some(QUIESCE);
    /// ndo_tx_timeout was called in a run that does not provoke it.
    TxTimeout = "tx-timeout", HostOracle, Irq,
        "Completions never stall a TX queue for a whole watchdog period (no ndo_tx_timeout unless provoked).", Some(HANG);

    // Judged by the guest: its verdict, its oracle-fail texts, and the
    // rules those texts name by their first word (`guest:<prefix>`).
    /// The guest's failing verdict.
    GuestVerdict = "guest-verdict", Guest, Verdict, says::GUEST, None;
    /// A failure one of the guest's own oracles reported.
    GuestOracles = "guest-oracles", Guest, Verdict, says::GUEST, None;
    /// The guest saw the hardware started after stop.
    GuestQuiesce = "guest:quiesce", Guest, Verdict, says::QUIESCE_DOORBELL, Some(QUIESCE);
    /// The guest's stop returned before its reset finished.
    GuestResetPoll = "guest:reset-poll", Guest, Verdict, says::RESET_WAIT, Some(RESET);
    /// The guest's DMA map count is not back to zero.
    GuestDmaMaps = "guest:dma-maps", Guest, Maps, says::MAPS, Some(ABORT);
    /// The guest's DMA mappings are live at the end.
    GuestDma = "guest:dma", Guest, Maps, says::MAPS, Some(ABORT);
    /// DMA pages leaked across open/stop cycles.
    GuestCycle = "guest:cycle", Guest, Verdict, says::MAPS, Some(ABORT);
    /// The guest's skb ledger does not balance.
    GuestSkbLedger = "guest:skb-ledger", Guest, Skb, says::SKB, Some(FREE);
    /// The guest's skb ledger does not balance (older wording).
    GuestSkbLedgerOld = "guest:skb ledger", Guest, Skb, says::SKB, Some(FREE);
    /// An skb check of the guest failed.
    GuestSkb = "guest:skb", Guest, Verdict, says::SKB, Some(FREE);
    /// TX completions were not reclaimed in time.
    GuestTimely = "guest:timely", Guest, Verdict, says::SKB, Some(FREE);
    /// TX was not reclaimed under a small NAPI budget.
    GuestSmallBudget = "guest:small-budget", Guest, Verdict, says::SKB, Some(FREE);
    /// A failed DMA map leaked its skb.
    GuestMapFailure = "guest:map-failure", Guest, Verdict, says::SKB, Some(FREE);
    /// The soak run's ledger does not balance.
    GuestSoak = "guest:soak", Guest, Verdict, says::SKB, Some(FREE);
    /// The guest's BQL check failed.
    GuestBql = "guest:bql", Guest, Bql, says::BQL, None;
    /// The guest saw posted descriptors without a doorbell.
    GuestDoorbell = "guest:doorbell", Guest, Verdict, says::DOORBELL, Some(HANG);
    /// The guest saw BUSY where the queue should have been stopped.
    GuestStopEarly = "guest:stop-early", Guest, Busy, says::NO_BUSY, Some(BUSY);
    /// After BUSY the driver kept or freed the skb.
    GuestBusyOwnership = "guest:busy-ownership", Guest, Verdict,
        "After NETDEV_TX_BUSY the driver keeps no reference to the skb and does not free it.", Some(BUSY_REF);
    /// A stopped queue with a free ring.
    GuestLostWake = "guest:lost wake", Guest, Verdict, says::LOST_WAKE, Some(QUEUE);
    /// A stopped queue with a free ring (hyphenated wording).
    GuestLostWakeHyphen = "guest:lost-wake", Guest, Verdict, says::LOST_WAKE, Some(QUEUE);
    /// The queue stayed stopped with room in the ring.
    GuestStuckStopped = "guest:stuck-stopped", Guest, Verdict, says::LOST_WAKE, Some(QUEUE);
    /// The queue was woken without room.
    GuestFalseWake = "guest:false-wake", Guest, Verdict, says::LOST_WAKE, Some(QUEUE);
    /// start_xmit wrote the shared head of a cloned skb.
    GuestCloneHead = "guest:clone-head", Guest, Verdict,
        "ndo_start_xmit never writes the shared parts of a cloned skb.", Some(CLONE);
    /// The guest saw unregister close the device wrongly.
    GuestAutoClose = "guest:auto-close", Guest, AutoClose, says::AUTO_CLOSE, Some(AUTO_CLOSE);
    /// The guest's MAC check failed.
    GuestMacAddress = "guest:mac-address", Guest, Verdict, says::MAC, Some(MAC);
    /// A stuck queue got no ndo_tx_timeout.
    GuestWatchdog = "guest:watchdog", Guest, Verdict, says::WATCHDOG, Some(HANG);
    /// ndo_tx_timeout did not recover the queue.
    GuestTxTimeout = "guest:tx_timeout", Guest, Verdict, says::WATCHDOG, Some(HANG);
    /// A budget-0 NAPI poll did RX or completed.
    GuestNapiBudget = "guest:napi-budget", Guest, Verdict,
        "A NAPI poll with budget 0 reclaims TX only: no RX, no napi_complete_done.", None;
}

impl Rule {
    /// The rule with this stable name.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// For a `guest:<prefix>` rule, its prefix.
    pub fn guest_prefix(self) -> Option<&'static str> {
        self.name().strip_prefix("guest:")
    }

    /// The `guest:<prefix>` rule a guest oracle text names: the longest
    /// prefix the text starts with as a whole word (followed by `:` or a
    /// space).
    pub fn of_guest_text(text: &str) -> Option<Rule> {
        Rule::ALL
            .iter()
            .copied()
            .filter(|r| {
                r.guest_prefix()
                    .is_some_and(|p| text.starts_with(p) && text[p.len()..].starts_with([':', ' ']))
            })
            .max_by_key(|r| r.name().len())
    }
}

impl core::fmt::Display for Rule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule serializes as its stable name.
#[cfg(feature = "std")]
impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, r) in Rule::ALL.iter().enumerate() {
            assert_eq!(Rule::from_name(r.name()), Some(*r));
            assert!(
                Rule::ALL[..i].iter().all(|o| o.name() != r.name()),
                "{r:?}: name taken twice"
            );
            assert!(r.statement().ends_with('.'), "{r:?}");
            assert_eq!(
                r.judge() == Judge::Guest && r.name().contains(':'),
                r.guest_prefix().is_some()
            );
        }
        for (i, row) in Row::ALL.iter().enumerate() {
            assert_eq!(row.index(), i);
        }
    }

    #[test]
    fn guest_texts_find_the_longest_whole_word_prefix() {
        assert_eq!(
            Rule::of_guest_text("skb ledger: double free"),
            Some(Rule::GuestSkbLedgerOld)
        );
        assert_eq!(Rule::of_guest_text("skb: x"), Some(Rule::GuestSkb));
        assert_eq!(
            Rule::of_guest_text("dma-maps: 2 live"),
            Some(Rule::GuestDmaMaps)
        );
        assert_eq!(Rule::of_guest_text("dma: live"), Some(Rule::GuestDma));
        assert_eq!(Rule::of_guest_text("skbfoo: x"), None);
        assert_eq!(Rule::of_guest_text("bql"), None);
    }
}
