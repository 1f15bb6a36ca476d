import NIOCore
import ProxCore
import Testing
@testable import ProxEngine

/// `RequestFlow.prepareUpstreamHead`: what the upstream learns about the client, by peer trust.
@Suite struct ForwardingHeadersTests {
    static func run(peer: String, trusted: [String], headers: [(String, String)], version: UInt8 = 1) throws -> [(name: String, value: String)] {
        let listener = ListenerSpec(id: "main", index: 0, host: "127.0.0.1", port: 0, trustedProxies: trusted.compactMap { CIDR($0) })
        let snapshot = Snapshot(version: 1, source: "t", listeners: [listener], routes: [], pools: [],
                                router: try Router([]), settings: ServerSettings(serverName: "edge"))
        func prepared(_ forwarding: HeaderLines?) -> RequestContext {
            let head = RequestHead.make(method: .get, target: "/", headers: headers, versionMinor: version)
            let ctx = RequestContext(head: head, snapshot: snapshot, listener: listener, client: IPAddress(peer)!, clientPort: 1, eventLoop: nil)
            RequestFlow.prepareUpstreamHead(ctx, serverName: "edge", forwarding: forwarding)
            return ctx
        }
        // As dry-run runs it (the lines made per request), and as the engine does (made once per
        // connection): the same lines, the same known-name bits.
        let dry = prepared(nil)
        let served = prepared(RequestFlow.forwardingLines(clientIPText: IPAddress(peer)!.description, scheme: "http"))
        #expect(served.head.fields.addedBytes == dry.head.fields.addedBytes)
        #expect(served.head.fields.addedKnown == dry.head.fields.addedKnown)
        #expect(served.head.fields.effective.map { "\($0.name): \($0.value)" } == dry.head.fields.effective.map { "\($0.name): \($0.value)" })
        return served.head.fields.effective
    }

    @Test func onlyOneOfTheTwoCameIn() throws {
        let proto = try Self.run(peer: "203.0.113.9", trusted: [], headers: [("Host", "a.test"), ("X-Forwarded-Proto", "https")])
        #expect(Self.values(proto, "X-Forwarded-For") == ["203.0.113.9"])
        #expect(Self.values(proto, "X-Forwarded-Proto") == ["http"])
        let forwardedFor = try Self.run(peer: "10.0.0.2", trusted: ["10.0.0.0/8"], headers: [("Host", "a.test"), ("X-Forwarded-For", "1.2.3.4")])
        #expect(Self.values(forwardedFor, "X-Forwarded-For") == ["1.2.3.4, 10.0.0.2"])
        #expect(Self.values(forwardedFor, "X-Forwarded-Proto") == ["http"])
        let both = try Self.run(peer: "203.0.113.9", trusted: [], headers: [("Host", "a.test")])
        #expect(both.map { $0.name.lowercased() } == ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via"])
    }

    static func values(_ fields: [(name: String, value: String)], _ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    @Test func untrustedPeerCannotForgeForwardingHeaders() throws {
        let f = try Self.run(peer: "203.0.113.9", trusted: ["10.0.0.0/8"], headers: [
            ("Host", "shop.test"), ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test"),
        ])
        #expect(Self.values(f, "X-Forwarded-For") == ["203.0.113.9"])
        #expect(Self.values(f, "X-Forwarded-Proto") == ["http"])
        #expect(Self.values(f, "X-Forwarded-Host") == ["shop.test"])
        #expect(Self.values(f, "Via") == ["1.1 edge"])
    }

    @Test func trustedPeerIsAppendedToAndKept() throws {
        let f = try Self.run(peer: "10.1.2.3", trusted: ["10.0.0.0/8"], headers: [
            ("Host", "shop.test"), ("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "10.9.9.9"),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "www.shop.test"), ("Via", "1.1 lb"),
        ])
        #expect(Self.values(f, "X-Forwarded-For") == ["198.51.100.1, 10.9.9.9, 10.1.2.3"])
        #expect(Self.values(f, "X-Forwarded-Proto") == ["https"])
        #expect(Self.values(f, "X-Forwarded-Host") == ["www.shop.test"])
        #expect(Self.values(f, "Via") == ["1.1 lb, 1.1 edge"])
    }

    @Test func absentHeadersAreAddedOnceAndHTTP10IsNamedInVia() throws {
        let f = try Self.run(peer: "::1", trusted: [], headers: [("Host", "a.test:8080")], version: 0)
        #expect(Self.values(f, "X-Forwarded-For") == ["::1"])
        #expect(Self.values(f, "X-Forwarded-Host") == ["a.test:8080"])
        #expect(Self.values(f, "Via") == ["1.0 edge"])
        #expect(f.filter { $0.name.lowercased().hasPrefix("x-forwarded") }.count == 3)
    }
}
