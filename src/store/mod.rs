//! cutover's own state: releases, deployments, events, locks, instances. (Being written.)
