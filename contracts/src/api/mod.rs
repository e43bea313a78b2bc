//! Bodies of the HTTP APIs between Strata's processes and their operators, versioned by
//! path (`/v1/...`).

pub mod control_plane;
pub mod edge;
pub mod steering;
