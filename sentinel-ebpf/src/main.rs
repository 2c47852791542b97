//! Sentinel's kernel programs. Each entry point is named `<area>_<hook>` and does as little
//! as it can: capture, filter, hand the record to the ring buffer. Everything else is user
//! space's job.
#![no_std]
#![no_main]

mod emit;
mod maps;
mod probes;
mod repeats;
mod task;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
