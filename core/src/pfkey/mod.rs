//! PF_KEY v2 message views, filters, rewrites and builders (OpenBSD flavour).
