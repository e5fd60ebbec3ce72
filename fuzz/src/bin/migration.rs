//! AFL entry point of the `migration` target: [`cutover_fuzz::migration`] on each input.

fn main() {
    afl::fuzz!(|data: &[u8]| cutover_fuzz::migration(data));
}
