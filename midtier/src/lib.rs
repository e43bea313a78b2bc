//! The mid-tier: the parent cache and origin shield that edges hash to, so the origin sees
//! each object about once. Not built yet: the mid-tier issue builds it on the edge's cache.
