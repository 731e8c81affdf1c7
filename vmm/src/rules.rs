//! Which rule of the catalogue (`nic_model::rules::Rule`) a finding
//! breaks, for `nicproof explain`'s sentence and quote. A finding names
//! its rule by its `oracle` (a host oracle, a device monitor rule,
//! `device-live-maps`); the guest's own findings (`guest-oracles`,
//! `guest-verdict`) name it by the first word of their text
//! (`guest:<prefix>` rules).

use nic_model::rules::Rule;

/// The rule a finding breaks. Guest oracle findings (`guest-oracles`,
/// `guest-verdict`) are matched by their text's prefix first.
pub fn rule_for(oracle: &str, detail: &str) -> Option<Rule> {
    if oracle.starts_with("guest") {
        let text = detail.strip_prefix("fail: ").unwrap_or(detail);
        if let Some(r) = Rule::of_guest_text(text) {
            return Some(r);
        }
    }
    Rule::from_name(oracle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::rules::quote;

    #[test]
    fn every_rule_of_the_catalogue_has_a_sentence() {
        for r in Rule::ALL {
            let found = rule_for(r.name(), "").unwrap_or_else(|| panic!("no rule text for {r}"));
            assert_eq!(found, *r);
            assert!(found.statement().ends_with('.'), "{r}");
        }
    }

    #[test]
    fn guest_texts_find_their_rule_by_prefix() {
        let r = rule_for(
            "guest-verdict",
            "fail: reset-poll: stop returned with the reset still running",
        )
        .unwrap();
        assert_eq!(r.quote(), Some(quote::RESET));
        let r = rule_for("guest-oracles", "bql: completed more than queued").unwrap();
        assert_eq!(r.statement(), Rule::BqlBalance.statement());
        assert_eq!(
            rule_for("guest-oracles", "lost wake: queue stopped with a free ring")
                .unwrap()
                .quote(),
            Some(quote::QUEUE)
        );
        // A prefix must be a whole word: `skb` does not take `skbfoo`'s texts, and
        // an unknown text falls back to the oracle's own rule.
        assert_eq!(
            rule_for("guest-oracles", "skbfoo: x"),
            Some(Rule::GuestOracles)
        );
        assert_eq!(
            rule_for("reset-wait", "").unwrap().quote().unwrap().section,
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
        for q in quote::ALL.iter().chain(
            Rule::ALL
                .iter()
                .filter_map(|r| r.quote())
                .collect::<Vec<_>>()
                .iter(),
        ) {
            assert!(norm(DOC).contains(&norm(q.text)), "{}", q.text);
        }
    }
}
