//! What each finding's rule says, in one plain sentence, with the line of
//! Linux's "Softnet Driver Issues" (Documentation/networking/driver.rst)
//! it enforces where it is one of those rules. Keyed by the names the
//! findings already carry: host oracles (`oracles::ORACLES`), device
//! monitor rules (`nic_model::monitor::RULE_*`), and the guest's own
//! oracles by the prefix of their text (`guest:<prefix>`). A test checks
//! that every oracle and monitor rule has an entry.

use nic_model::monitor;

/// A line of "Softnet Driver Issues", with the section it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// `transmit 1`, `close/stop 1`, ...
    pub section: &'static str,
    /// The words of the document.
    pub text: &'static str,
}

const BUSY: Quote = Quote {
    section: "transmit 1",
    text:
        "The ndo_start_xmit method must not return NETDEV_TX_BUSY under any normal circumstances.",
};
const QUEUE: Quote = Quote {
    section: "transmit 1",
    text: "Instead it must maintain the queue properly.",
};
const CLONE: Quote = Quote {
    section: "transmit 2",
    text: "An ndo_start_xmit method must not modify the shared parts of a cloned SKB.",
};
const FREE: Quote = Quote {
    section: "transmit 3",
    text: "once you return NETDEV_TX_OK from your ndo_start_xmit method, it is your driver's \
           responsibility to free up the SKB and in some finite amount of time.",
};
const HANG: Quote = Quote {
    section: "transmit 3",
    text:
        "it is not allowed for your TX mitigation scheme to let TX packets \"hang out\" in the TX \
           ring unreclaimed forever if no new TX packets are sent.",
};
const BUSY_REF: Quote = Quote {
    section: "transmit 3",
    text: "If you return NETDEV_TX_BUSY from the ndo_start_xmit method, you must not keep any \
           reference to that SKB and you must not attempt to free it up.",
};
const MAC: Quote = Quote {
    section: "probing 1",
    text: "Any hardware layer address you obtain for your device should be verified.",
};
const QUIESCE: Quote = Quote {
    section: "close/stop 1",
    text: "After the ndo_stop routine has been called, the hardware must not receive or transmit any data.",
};
const ABORT: Quote = Quote {
    section: "close/stop 1",
    text: "All in flight packets must be aborted.",
};
const RESET: Quote = Quote {
    section: "close/stop 1",
    text: "If necessary, poll or wait for completion of any reset commands.",
};
const AUTO_CLOSE: Quote = Quote {
    section: "close/stop 2",
    text: "The ndo_stop routine will be called by unregister_netdevice if device is still UP.",
};

/// One rule: the finding names it covers, what it says, and its line of
/// the document if it is one of the document's rules.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Finding names (`oracle` of a finding), and `guest:<prefix>` for a
    /// guest oracle text starting with `<prefix>`.
    pub names: &'static [&'static str],
    /// The rule in one plain sentence.
    pub sentence: &'static str,
    pub quote: Option<Quote>,
}

/// Every rule a finding can name.
pub const RULES: &[Rule] = &[
    Rule {
        names: &[monitor::RULE_DMA_AFTER_STOP],
        sentence: "The device must not read or write guest memory after the driver's ndo_stop returned.",
        quote: Some(QUIESCE),
    },
    Rule {
        names: &[monitor::RULE_IRQ_AFTER_STOP],
        sentence: "The device must not raise an interrupt after the driver's ndo_stop returned.",
        quote: Some(QUIESCE),
    },
    Rule {
        names: &["doorbell-after-stop", "guest:quiesce"],
        sentence: "The driver must not ring a doorbell (start the hardware) after its ndo_stop returned.",
        quote: Some(QUIESCE),
    },
    Rule {
        names: &["reset-wait", "guest:reset-poll"],
        sentence: "ndo_stop must wait for the device's reset to finish before it unmaps buffers or returns.",
        quote: Some(RESET),
    },
    Rule {
        names: &["dma-maps", "device-live-maps", monitor::RULE_UNMAP_UNMAPPED, "guest:dma-maps", "guest:dma", "guest:cycle"],
        sentence: "Every DMA mapping is unmapped exactly once, and none is left when the device is stopped.",
        quote: Some(ABORT),
    },
    Rule {
        names: &["skb-ledger", "guest:skb-ledger", "guest:skb ledger", "guest:skb", "guest:timely", "guest:small-budget", "guest:map-failure", "guest:soak"],
        sentence: "Every skb the driver accepted is freed exactly once, in finite time.",
        quote: Some(FREE),
    },
    Rule {
        names: &[monitor::RULE_COMPLETION_UNSIGNALLED],
        sentence: "A TX completion or received frame written back while its cause is enabled raises an interrupt within the coalescing bound.",
        quote: Some(HANG),
    },
    Rule {
        names: &[monitor::RULE_MSI_BAD_ADDRESS],
        sentence: "The device signals MSI-X only to an address in the interrupt window (0xFEE00000-0xFEEFFFFF); any other is refused and latched as a device error.",
        quote: None,
    },
    Rule {
        names: &["bql-balance", "guest:bql"],
        sentence: "The bytes completed to BQL equal the bytes sent, so BQL is back to zero when the ring is empty.",
        quote: None,
    },
    Rule {
        names: &["doorbell-pending", "guest:doorbell"],
        sentence: "Posted descriptors get their doorbell, so no packet waits in the ring with nothing to send it.",
        quote: Some(HANG),
    },
    Rule {
        names: &["no-busy", "guest:stop-early"],
        sentence: "ndo_start_xmit stops the queue in advance and never returns NETDEV_TX_BUSY in normal operation.",
        quote: Some(BUSY),
    },
    Rule {
        names: &["guest:busy-ownership"],
        sentence: "After NETDEV_TX_BUSY the driver keeps no reference to the skb and does not free it.",
        quote: Some(BUSY_REF),
    },
    Rule {
        names: &["guest:lost wake", "guest:lost-wake", "guest:stuck-stopped", "guest:false-wake"],
        sentence: "A stopped TX queue is woken once the ring has room again (no lost wake-up).",
        quote: Some(QUEUE),
    },
    Rule {
        names: &["guest:clone-head"],
        sentence: "ndo_start_xmit never writes the shared parts of a cloned skb.",
        quote: Some(CLONE),
    },
    Rule {
        names: &["auto-close", "guest:auto-close"],
        sentence: "unregister_netdevice calls ndo_stop exactly once if the device is UP, never if it is down.",
        quote: Some(AUTO_CLOSE),
    },
    Rule {
        names: &["mac-address", "guest:mac-address"],
        sentence: "The driver registers only a valid unicast MAC address (is_valid_ether_addr).",
        quote: Some(MAC),
    },
    Rule {
        names: &["guest:watchdog", "guest:tx_timeout"],
        sentence: "A TX queue stuck longer than the watchdog timeout gets ndo_tx_timeout and recovers.",
        quote: Some(HANG),
    },
    Rule {
        names: &["bql-stall"],
        sentence: "TX completions reach BQL in time: no completion gap longer than the stall threshold while TX is queued.",
        quote: Some(FREE),
    },
    Rule {
        names: &["irq-reenable"],
        sentence: "A NAPI poll that completes under budget re-enables the interrupt causes its handler masked.",
        quote: None,
    },
    Rule {
        names: &["irq-enabled-after-stop"],
        sentence: "No interrupt cause is enabled from ndo_stop's return until the next open.",
        quote: Some(QUIESCE),
    },
    Rule {
        names: &["irq-after-napi-disable"],
        sentence: "Once napi_disable returned in stop, an interrupt handler leaves the device alone until open enables NAPI again.",
        quote: Some(QUIESCE),
    },
    Rule {
        names: &["tx-timeout"],
        sentence: "Completions come from interrupts: ndo_tx_timeout fires only where a scenario stalls the device on purpose.",
        quote: Some(HANG),
    },
    Rule {
        names: &["queue-thresholds"],
        sentence: "The driver stops its queue only when a worst-case packet no longer fits, and wakes it only at the start threshold.",
        quote: Some(QUEUE),
    },
    Rule {
        names: &["guest:napi-budget"],
        sentence: "A NAPI poll with budget 0 reclaims TX only: no RX, no napi_complete_done.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_UNMAPPED],
        sentence: "The device reads and writes only memory the driver has mapped for DMA (an IOMMU would fault).",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_WRONG_DIRECTION],
        sentence: "The device writes only from-device mappings and reads only to-device ones.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_BUS_MASTER_OFF],
        sentence: "The device makes no DMA while PCI bus mastering is off.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_DEVICE_DISABLED],
        sentence: "The device makes no DMA for a ring whose enable bit is clear.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_DURING_RESET],
        sentence: "The device makes no DMA while a reset is in progress.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_OUTSIDE_RAM],
        sentence: "A DMA address outside guest RAM is refused and latched as a device error.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DMA_INTO_BAR],
        sentence: "A DMA address inside the device's own registers is refused and latched as a device error.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_DESC_UNPOSTED],
        sentence: "The device fetches only descriptors the driver posted (before TX_TAIL), in order.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_COMPLETION_UNPOSTED],
        sentence: "The device completes only descriptors it fetched.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_IRQ_WHILE_DISABLED],
        sentence: "The device raises an interrupt only for a cause the driver enabled.",
        quote: None,
    },
    Rule {
        names: &[monitor::RULE_RESET_INEFFECTIVE],
        sentence: "A reset returns the device to its reset state.",
        quote: None,
    },
    Rule {
        names: &["device-error"],
        sentence: "The device latches no error the scenario did not provoke on purpose.",
        quote: None,
    },
    Rule {
        names: &["rx-content"],
        sentence: "Every frame delivered to the stack holds exactly the bytes that were sent.",
        quote: None,
    },
    Rule {
        names: &["guest-verdict", "guest-oracles"],
        sentence: "The guest's own checks pass (its verdict says which failed).",
        quote: None,
    },
];

/// The rule a finding breaks. Guest oracle findings (`guest-oracles`,
/// `guest-verdict`) are matched by their text's prefix first.
pub fn rule_for(oracle: &str, detail: &str) -> Option<&'static Rule> {
    let by_name = |n: &str| RULES.iter().find(|r| r.names.contains(&n));
    if oracle.starts_with("guest") {
        let text = detail.strip_prefix("fail: ").unwrap_or(detail);
        let guest = RULES.iter().find(|r| {
            r.names
                .iter()
                .filter_map(|n| n.strip_prefix("guest:"))
                .any(|p| text.starts_with(p) && text[p.len()..].starts_with([':', ' ']))
        });
        if guest.is_some() {
            return guest;
        }
    }
    by_name(oracle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles::ORACLES;

    const MONITOR_RULES: &[&str] = &[
        monitor::RULE_DMA_AFTER_STOP,
        monitor::RULE_DMA_UNMAPPED,
        monitor::RULE_DMA_WRONG_DIRECTION,
        monitor::RULE_DMA_BUS_MASTER_OFF,
        monitor::RULE_DMA_DEVICE_DISABLED,
        monitor::RULE_DMA_DURING_RESET,
        monitor::RULE_DMA_OUTSIDE_RAM,
        monitor::RULE_DMA_INTO_BAR,
        monitor::RULE_DESC_UNPOSTED,
        monitor::RULE_COMPLETION_UNPOSTED,
        monitor::RULE_IRQ_AFTER_STOP,
        monitor::RULE_IRQ_WHILE_DISABLED,
        monitor::RULE_RESET_INEFFECTIVE,
        monitor::RULE_UNMAP_UNMAPPED,
        monitor::RULE_MSI_BAD_ADDRESS,
        monitor::RULE_COMPLETION_UNSIGNALLED,
    ];

    #[test]
    fn every_oracle_and_monitor_rule_has_a_sentence() {
        for n in ORACLES
            .iter()
            .chain(MONITOR_RULES)
            .chain(&["guest-verdict", "device-live-maps"])
        {
            let r = rule_for(n, "").unwrap_or_else(|| panic!("no rule text for {n}"));
            assert!(r.sentence.ends_with('.'), "{n}");
        }
        // No name is claimed twice.
        let mut all: Vec<&str> = RULES.iter().flat_map(|r| r.names.iter().copied()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a finding name is in two rules");
    }

    #[test]
    fn guest_texts_find_their_rule_by_prefix() {
        let r = rule_for(
            "guest-verdict",
            "fail: reset-poll: stop returned with the reset still running",
        )
        .unwrap();
        assert_eq!(r.quote, Some(RESET));
        let r = rule_for("guest-oracles", "bql: completed more than queued").unwrap();
        assert!(r.names.contains(&"bql-balance"));
        assert_eq!(
            rule_for("guest-oracles", "lost wake: queue stopped with a free ring")
                .unwrap()
                .quote,
            Some(QUEUE)
        );
        // A prefix must be a whole word: `skb` does not take `skb-ledger`'s texts wrongly, and
        // an unknown text falls back to the oracle's own rule.
        assert!(rule_for("guest-oracles", "skbfoo: x")
            .unwrap()
            .names
            .contains(&"guest-oracles"));
        assert_eq!(
            rule_for("reset-wait", "").unwrap().quote.unwrap().section,
            "close/stop 1"
        );
        assert!(rule_for("no-such-oracle", "").is_none());
    }

    /// The quotes are the document's words: each is a substring of the
    /// text as stored in the kernel tree (whitespace normalised).
    #[test]
    fn quotes_are_words_of_the_document() {
        const DOC: &str = "The ndo_start_xmit method must not return NETDEV_TX_BUSY under any normal circumstances. \
            It is considered a hard error unless there is no way your device can tell ahead of time when its transmit \
            function will become busy. Instead it must maintain the queue properly. \
            An ndo_start_xmit method must not modify the shared parts of a cloned SKB. \
            Do not forget that once you return NETDEV_TX_OK from your ndo_start_xmit method, it is your driver's \
            responsibility to free up the SKB and in some finite amount of time. For example, this means that it is \
            not allowed for your TX mitigation scheme to let TX packets \"hang out\" in the TX ring unreclaimed forever \
            if no new TX packets are sent. If you return NETDEV_TX_BUSY from the ndo_start_xmit method, you must not \
            keep any reference to that SKB and you must not attempt to free it up. Any hardware layer address you \
            obtain for your device should be verified. After the ndo_stop routine has been called, the hardware must \
            not receive or transmit any data. All in flight packets must be aborted. If necessary, poll or wait for \
            completion of any reset commands. The ndo_stop routine will be called by unregister_netdevice if device \
            is still UP.";
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for r in RULES {
            if let Some(q) = r.quote {
                assert!(norm(DOC).contains(&norm(q.text)), "{}", q.text);
            }
        }
    }
}
