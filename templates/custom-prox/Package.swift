// swift-tools-version:6.0
// A `prox` with your own filters, built without forking Prox (like xcaddy for Caddy).
// Copy this directory into your own repository, point the dependency at your Prox release,
// and build: `swift build -c release -Xswiftc -enforce-exclusivity=unchecked` (the flag Prox's
// scripts/build-release.sh passes; what it saves: Prox's docs/BENCHMARKS.md, "The exclusivity flag").
import PackageDescription

let package = Package(
    name: "custom-prox",
    platforms: [.macOS(.v14)],
    dependencies: [
        // In your repository: .package(url: "https://github.com/<org>/prox.git", from: "<version>"),
        // Here, the Prox checkout this template lives in (scripts/test-out-of-tree.sh builds it):
        .package(name: "prox", path: "../.."),
    ],
    targets: [
        // Your filters: each depends only on ProxCore, like Prox's own filters/<name>/.
        .target(name: "AcmeFilters", dependencies: [.product(name: "ProxCore", package: "prox")]),
        // Your binary: Prox's CLI (serve, validate, dry-run, check, schema, filters) plus your filters.
        .executableTarget(name: "acme-prox", dependencies: ["AcmeFilters", .product(name: "ProxMain", package: "prox")]),
        .testTarget(name: "AcmeFiltersTests",
                    dependencies: ["AcmeFilters", .product(name: "ProxFilterTesting", package: "prox")]),
    ]
)
