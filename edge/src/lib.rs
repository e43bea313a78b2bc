//! The edge appliance: a pingora proxy over a foyer memory + NVMe segment cache, serving
//! players over HTTP/1.1, HTTP/2 and HTTP/3. Not built yet: the edge issue builds it on the
//! foundation (workspace, contracts, origin, admin listener pattern).
