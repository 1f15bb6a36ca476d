// swift-tools-version:6.0
import PackageDescription

// No unsafeFlags here: they would stop this package being used as a dependency (an
// out-of-tree `prox` with a team's own filters, templates/custom-prox/). Release builds switch
// off Swift's dynamic exclusivity checks in every module, dependencies included, through
// scripts/build-release.sh (-Xswiftc -enforce-exclusivity=unchecked; its measured gain:
// docs/BENCHMARKS.md, "The exclusivity flag").
let hotPathFlags: [SwiftSetting] = []
// Swift 5 language mode: ProxEngine and its tests only, until their rewrite moves them to Swift 6.

let package = Package(
    name: "prox",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "prox", targets: ["prox"]),
        .library(name: "ProxCore", targets: ["ProxCore"]),
        // The CLI as a library: `ProxMain.run(extraFilters: [...])` builds a `prox` with more filters.
        .library(name: "ProxMain", targets: ["ProxMain"]),
        // Helpers for filters' unit tests (compile with extra filters, route a request, run the chain).
        .library(name: "ProxFilterTesting", targets: ["ProxFilterTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", exact: "6.2.2"),
        // Downstream TLS: swift-nio-ssl brings its own BoringSSL (no system libssl).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", exact: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CPCRE2",
            pkgConfig: "libpcre2-8",
            providers: [.apt(["libpcre2-dev"])]
        ),
        .target(name: "ProxRegex", dependencies: ["CPCRE2"], swiftSettings: hotPathFlags),
        // Raw io_uring system calls and SQE preparation over the kernel's uapi header (no
        // liburing): the io_uring engine's ring. Compiles to nothing off Linux.
        .target(name: "CProxURing"),
        .target(
            name: "ProxCore",
            dependencies: ["ProxRegex", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: hotPathFlags
        ),
        .target(
            name: "ProxFilters",
            dependencies: [
                "ProxCore",
                // ext_filter's client: its own connections to the external service.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: hotPathFlags
        ),
        .target(name: "ProxUpstream", dependencies: ["ProxCore"], swiftSettings: hotPathFlags),
        // Listener TLS: certificates loaded and checked when a config compiles, SNI selection,
        // the server handler. The only target that links swift-nio-ssl; ProxCore names the
        // compiled TLS with a protocol (`ListenerTLS`), so filters never link a TLS library.
        .target(
            name: "ProxTLS",
            dependencies: [
                "ProxCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // YAML: our own composer over libyaml's events. libyaml is the C target `CYaml` inside
        // the Yams package, which exports no product for it: depending on Yams' product builds
        // and links it, and ProxConfig imports `CYaml` directly (Yams' Swift API is not used).
        .target(
            name: "ProxConfig",
            dependencies: ["ProxCore", "ProxFilters", "ProxTLS", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "ProxEngine",
            dependencies: [
                "ProxCore", "ProxUpstream", "CProxURing",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathFlags
        ),
        .target(
            name: "ProxCLI",
            dependencies: [
                "ProxEngine", "ProxConfig", "ProxCore", "ProxFilters",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Custom filters: filters/<name>/, each a target depending only on ProxCore, with its
        // tests beside it; registered in Sources/ProxMain/CustomFilters.swift.
        .target(name: "ProxFilterMaintenance", dependencies: ["ProxCore"], path: "filters/maintenance/Sources"),
        .testTarget(name: "ProxFilterMaintenanceTests", dependencies: ["ProxFilterMaintenance", "ProxFilterTesting"],
                    path: "filters/maintenance/Tests"),
        .target(name: "ProxFilterTenant", dependencies: ["ProxCore"], path: "filters/tenant/Sources"),
        .testTarget(name: "ProxFilterTenantTests", dependencies: ["ProxFilterTenant", "ProxFilterTesting"],
                    path: "filters/tenant/Tests"),
        .target(name: "ProxFilterTesting", dependencies: ["ProxCore", "ProxConfig", "ProxFilters"]),
        .target(
            name: "ProxMain",
            dependencies: ["ProxCLI", "ProxCore", "ProxFilters", "ProxFilterMaintenance", "ProxFilterTenant"]
        ),
        .executableTarget(name: "prox", dependencies: ["ProxMain"]),
        .executableTarget(
            name: "prox-routebench",
            dependencies: ["ProxCore"],
            path: "bench/RouteBench",
            swiftSettings: hotPathFlags
        ),
        // The SwiftNIO floor: a verbatim byte forwarder, to measure what NIO itself costs.
        .executableTarget(
            name: "prox-niofloor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/NIOFloor",
            swiftSettings: hotPathFlags
        ),
        .testTarget(name: "ProxRegexTests", dependencies: ["ProxRegex", "ProxCore"]),
        .testTarget(name: "ProxCoreTests", dependencies: ["ProxCore"]),
        // Yams: the YAML loader as it was (Yams' composer), the reference YAMLEquivalenceTests
        // compare ours with.
        .testTarget(name: "ProxConfigTests", dependencies: ["ProxConfig", "ProxMain", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "ProxFiltersTests", dependencies: ["ProxFilters", "ProxConfig", "ProxFilterTesting"]),
        .testTarget(name: "ProxUpstreamTests", dependencies: ["ProxUpstream"]),
        .testTarget(
            name: "ProxEngineTests",
            dependencies: [
                "ProxEngine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        // End-to-end: real sockets, the real proxy in process, a real upstream, a real client;
        // golden tests of configs/ and `prox dry-run`.
        .testTarget(
            name: "ProxE2ETests",
            dependencies: [
                "ProxEngine", "ProxConfig", "ProxMain", "ProxTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // TLS clients of the TLS listener tests (certificates made with the openssl CLI).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                // The WebSocket pass-through tests' echo upstream and client.
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
    ]
)
