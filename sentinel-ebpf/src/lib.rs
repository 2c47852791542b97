#![no_std]
// This library target exists only so that the agent can list this crate as a
// build-dependency (cargo then rebuilds the agent when the kernel programs change).
