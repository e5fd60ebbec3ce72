//! AFL entry point of the `config` target: [`cutover_fuzz::config`] on each input.

fn main() {
    afl::fuzz!(|data: &[u8]| cutover_fuzz::config(data));
}
