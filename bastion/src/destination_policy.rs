//! Where a tunnel may go (placeholder, being written).
