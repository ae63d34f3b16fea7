"""How services are hosted and find each other: every service in one process (embedded,
`zynk up`) or one process per service (distributed). mesh/istio/ holds the production
manifests."""
