//! What BQL's errors say: the errno each refused setting gives (as
//! Linux's sysfs store) and the text every error prints. Written for
//! cargo-mutants survivors of guest-driver/src/softnet/bql.rs (README,
//! Mutation score).

use nicproof_guest::softnet::bql::BqlError;

#[test]
fn refused_settings_give_linuxs_errno_and_other_errors_none() {
    assert_eq!(BqlError::LimitAboveMax(1).errno(), Some(22), "EINVAL");
    assert_eq!(BqlError::StallThrsOutOfRange(3).errno(), Some(34), "ERANGE");
    assert_eq!(BqlError::ObjectTooBig(1).errno(), None);
    assert_eq!(BqlError::ResetWithNonEmptyRing(1).errno(), None);
    assert_eq!(
        BqlError::CompletedAboveQueued {
            count: 2,
            inflight: 1
        }
        .errno(),
        None
    );
}

#[test]
fn every_error_names_its_numbers() {
    let cases = [
        (
            BqlError::CompletedAboveQueued {
                count: 101,
                inflight: 100,
            },
            "bql: completed 101 bytes with 100 in flight",
        ),
        (
            BqlError::ObjectTooBig(70000),
            "bql: queued object of 70000 bytes",
        ),
        (
            BqlError::ResetWithNonEmptyRing(3),
            "bql: reset with 3 packets still on the ring",
        ),
        (
            BqlError::LimitAboveMax(9),
            "bql: limit 9 above DQL_MAX_LIMIT",
        ),
        (
            BqlError::StallThrsOutOfRange(129),
            "bql: stall_thrs of 129 jiffies outside 4..=128",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}
