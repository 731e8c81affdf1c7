//! Machine-specific half of the guest kernel (built only for
//! `x86_64-unknown-none`). Only this layer executes `cli`/`sti`, `hlt`,
//! MSR accesses, EOI and port I/O (which keeps a later move of
//! the data path to CPL3 cheap).

pub mod x86_64;
