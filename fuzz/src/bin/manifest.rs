//! AFL entry point of the `manifest` target: [`cutover_fuzz::manifest`] on each input.

fn main() {
    afl::fuzz!(|data: &[u8]| cutover_fuzz::manifest(data));
}
