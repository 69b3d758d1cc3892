//! PANN models.
