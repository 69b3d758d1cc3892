//! PANN protocols: two-party computation on additive shares with a dealer.

pub mod sign_poly;
