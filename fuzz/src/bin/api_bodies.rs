//! AFL entry point of the `api_bodies` target: [`cutover_fuzz::api_bodies`] on each input.

fn main() {
    afl::fuzz!(|data: &[u8]| cutover_fuzz::api_bodies(data));
}
