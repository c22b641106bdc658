// swift-tools-version:6.0
// CreditLedger: a permissioned credit ledger and attestation node.
import PackageDescription

let package = Package(
    name: "CreditLedger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "credit-node", targets: ["credit-node"]),
        .executable(name: "credit-verify", targets: ["credit-verify"]),
        .executable(name: "credit-bench", targets: ["credit-bench"]),
        .executable(name: "credit-fuzz", targets: ["credit-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.70.0"),
    ],
    targets: [
        // C libraries from Debian packages; each is imported by exactly one Swift module.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]
        ),
        // The only importer of CSodium.
        .target(name: "LedgerCrypto", dependencies: ["CSodium"], exclude: ["README.md"]),
        // The only importer of CRocksDB.
        .target(name: "LedgerStorage", dependencies: ["CRocksDB"], exclude: ["README.md"]),
        // Types, canonical encoding, Merkle log, checkpoints, validation. No I/O.
        .target(name: "LedgerCore", dependencies: ["LedgerCrypto"], exclude: ["README.md"]),
        // Tendermint consensus as a pure state machine: events in, actions out, logical time.
        .target(name: "Consensus", dependencies: ["LedgerCore"]),
        // Scorecards as data, deterministic integer evaluation, score updates. No I/O.
        .target(name: "Scoring", dependencies: ["LedgerCore", "LedgerCrypto"], exclude: ["README.md"]),
        // Query policies as data: parsing, install-time disclosure rules, deterministic evaluation. No I/O.
        .target(name: "Policy", dependencies: ["LedgerCore", "LedgerCrypto", "Scoring"]),
        // The chain's layout in RocksDB: blocks, transactions, Merkle nodes, indexes, integrity checks.
        .target(name: "LedgerStore", dependencies: ["LedgerCore", "LedgerCrypto", "LedgerStorage", "Scoring", "Policy"], exclude: ["README.md"]),
        // Authenticated, encrypted peer-to-peer transport between members (SwiftNIO). Opaque payloads.
        .target(
            name: "P2P",
            dependencies: [
                "LedgerCore", "LedgerCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // The node: ledger store, block production, HTTP API, client helpers.
        .target(
            name: "LedgerNode",
            dependencies: [
                "LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore", "Consensus", "P2P", "Scoring", "Policy",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "credit-node",
            dependencies: [
                "LedgerNode", "LedgerCore", "LedgerCrypto", "LedgerStore", "Scoring", "Policy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "credit-verify",
            dependencies: [
                "LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore", "Scoring", "Policy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "credit-bench",
            dependencies: [
                "LedgerNode", "LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore", "Scoring", "Policy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/credit-bench"
        ),
        // Every decoder of outside bytes under libFuzzer (-DFUZZING); without it, a replayer of inputs.
        .executableTarget(
            name: "credit-fuzz",
            dependencies: ["LedgerCore", "LedgerCrypto", "Consensus", "Scoring", "Policy"],
            path: "Fuzz/credit-fuzz"
        ),
        .testTarget(
            name: "LedgerCoreTests",
            dependencies: ["LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore"]
        ),
        .testTarget(
            name: "ConsensusTests",
            dependencies: ["Consensus", "LedgerCore", "LedgerCrypto"]
        ),
        .testTarget(
            name: "P2PTests",
            dependencies: [
                "P2P", "LedgerCore", "LedgerCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "LedgerNodeTests",
            dependencies: [
                "LedgerNode", "LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore", "P2P",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "PolicyTests",
            dependencies: ["Policy", "Scoring", "LedgerNode", "LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore",
                           .product(name: "HummingbirdTesting", package: "hummingbird")]
        ),
        .testTarget(
            name: "ScoringTests",
            dependencies: ["Scoring", "LedgerNode", "LedgerCore", "LedgerCrypto", "LedgerStorage", "LedgerStore"]
        ),
    ]
)
