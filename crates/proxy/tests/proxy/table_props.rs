//! Property test: for any sequence of table updates, valid or not, the table
//! the router reads is always whole and its weights always sum to 10000.

use std::net::SocketAddr;

use cutover_proxy::{
    Instance, Proxy, ProxyConfig, Route, ServiceSpec, TOTAL_WEIGHT_BP, Track, Weights,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Weights(String, u16),
    Parts(String, u16, u16),
    Instances(String, bool, Vec<u8>),
    Routes(Vec<(Option<String>, String, String)>),
    Batch(String, u16, Vec<u8>),
    AddService(String),
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("missing".to_owned())
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (service(), 0u16..=12_000).prop_map(|(s, w)| Op::Weights(s, w)),
        (service(), 0u16..=10_000, 0u16..=10_000).prop_map(|(s, a, b)| Op::Parts(s, a, b)),
        (
            service(),
            any::<bool>(),
            proptest::collection::vec(0u8..6, 0..4)
        )
            .prop_map(|(s, c, ids)| Op::Instances(s, c, ids)),
        proptest::collection::vec(
            (
                proptest::option::of(Just("h.example".to_owned())),
                prop_oneof![
                    Just("/".to_owned()),
                    Just("/api".to_owned()),
                    Just("bad".to_owned())
                ],
                service()
            ),
            0..3
        )
        .prop_map(Op::Routes),
        (
            service(),
            0u16..=12_000,
            proptest::collection::vec(0u8..6, 0..3)
        )
            .prop_map(|(s, w, ids)| Op::Batch(s, w, ids)),
        service().prop_map(Op::AddService),
    ]
}

fn instances(service: &str, ids: &[u8]) -> Vec<Instance> {
    ids.iter()
        .map(|i| {
            let addr: SocketAddr = format!("127.0.0.1:{}", 40_000 + u16::from(*i))
                .parse()
                .expect("addr");
            Instance::new(format!("{service}-{i}"), addr)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn weights_always_sum_and_refused_updates_change_nothing(ops in proptest::collection::vec(op(), 1..40)) {
        let proxy = Proxy::new(ProxyConfig::default());
        proxy.set_service("a", ServiceSpec::default()).expect("a");
        proxy.set_service("b", ServiceSpec::sticky("ct")).expect("b");
        proxy.set_routes(vec![Route::any("a")]).expect("routes");
        for op in ops {
            let before = proxy.table();
            let result = match &op {
                Op::Weights(s, w) => Weights::canary(*w).and_then(|w| proxy.set_weights(s, w)),
                Op::Parts(s, a, b) => Weights::from_parts(*a, *b).and_then(|w| proxy.set_weights(s, w)),
                Op::Instances(s, canary, ids) => {
                    let track = if *canary { Track::Canary } else { Track::Stable };
                    proxy.set_instances(s, track, instances(s, ids))
                }
                Op::Routes(rs) => proxy.set_routes(
                    rs.iter()
                        .map(|(h, p, s)| Route { host: h.clone(), path_prefix: p.clone(), service: s.clone() })
                        .collect(),
                ),
                Op::Batch(s, w, ids) => proxy.update(|u| {
                    u.set_instances(s, Track::Canary, instances(s, ids))?;
                    u.set_weights(s, Weights::canary(*w)?)?;
                    Ok(())
                }),
                Op::AddService(s) => proxy.set_service(s, ServiceSpec::default()),
            };
            let after = proxy.table();
            match result {
                Ok(generation) => prop_assert_eq!(generation, after.generation()),
                // A refused update, even a batch that failed half-way, leaves
                // the very same table in place.
                Err(_) => prop_assert!(std::sync::Arc::ptr_eq(&before, &after), "{:?} changed the table", op),
            }
            for name in after.service_names() {
                let view = after.service(&name).expect("listed");
                prop_assert_eq!(
                    u32::from(view.weights.stable_bp()) + u32::from(view.weights.canary_bp()),
                    u32::from(TOTAL_WEIGHT_BP)
                );
                // No instance is on two tracks.
                for s in &view.stable {
                    prop_assert!(!view.canary.contains(s));
                }
            }
            for r in after.routes() {
                prop_assert!(after.service(&r.service).is_some(), "route to undeclared service");
            }
        }
    }
}
