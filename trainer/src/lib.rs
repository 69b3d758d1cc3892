//! PANN trainer. This crate will hold the tch-based recipes (baseline, paper, finetune);
//! it is the only crate that will link libtorch. It is empty until that work lands.
