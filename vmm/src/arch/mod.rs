//! Architecture-specific set-up. nicproof only runs on x86_64.
pub mod x86_64;
