// swift-tools-version:5.9
// bench/URingFloor: the io_uring twin of bench/NIOFloor (see Sources/main.swift). A package of
// its own so that building Prox (and CI) never needs liburing; bench/uring-floor.sh builds it.
import PackageDescription

let package = Package(
    name: "URingFloor",
    targets: [
        .systemLibrary(name: "CURing", path: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .executableTarget(name: "prox-uringfloor", dependencies: ["CURing"], path: "Sources"),
    ]
)
