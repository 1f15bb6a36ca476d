import NIOCore
import NIOEmbedded
import ProxCore
import Testing
@testable import ProxEngine

/// Counts the `read` calls that reach the head of a pipeline: what the relay lets through.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// Two connected embedded channels on one loop, joined by a relay.
struct RelayRig {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let upstream: EmbeddedChannel
    let clientReads = ReadCounter()
    let upstreamReads = ReadCounter()
    let relay: ByteRelay
    final class Ended { var stats: ByteRelay.Stats? }
    let ended = Ended()

    init(idle: TimeAmount = .seconds(60), fromClient: String? = nil, fromUpstream: String? = nil) throws {
        client = EmbeddedChannel(loop: loop)
        upstream = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandler(clientReads)
        try upstream.pipeline.syncOperations.addHandler(upstreamReads)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        let ended = self.ended
        relay = ByteRelay(eventLoop: loop, idleTimeout: idle) { ended.stats = $0 }
        relay.start(client: client, upstream: upstream, fromClient: fromClient.map { ByteBuffer(string: $0) },
                    fromUpstream: fromUpstream.map { ByteBuffer(string: $0) })
    }

    static func drain(_ ch: EmbeddedChannel) throws -> String {
        var out = ""
        while let b = try ch.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        return out
    }
}

@Suite struct ByteRelayTests {
    @Test func relaysBothWaysStartingWithTheBytesReadBefore() throws {
        let rig = try RelayRig(fromClient: "early-up ", fromUpstream: "early-down ")
        #expect(try RelayRig.drain(rig.upstream) == "early-up ")
        #expect(try RelayRig.drain(rig.client) == "early-down ")
        try rig.client.writeInbound(ByteBuffer(string: "ping"))
        try rig.upstream.writeInbound(ByteBuffer(string: "pong"))
        #expect(try RelayRig.drain(rig.upstream) == "ping")
        #expect(try RelayRig.drain(rig.client) == "pong")
        #expect(rig.relay.stats.clientToUpstream == 13)
        #expect(rig.relay.stats.upstreamToClient == 15)
        // Both sides read from the start.
        #expect(rig.clientReads.reads >= 1 && rig.upstreamReads.reads >= 1)
    }

    @Test func aSideReadsOnlyWhileItsPartnerIsWritable() throws {
        let rig = try RelayRig()
        rig.upstream.isWritable = false
        rig.upstream.pipeline.fireChannelWritabilityChanged()
        let before = rig.clientReads.reads
        // The client side asks to read: held while the upstream cannot take more.
        rig.client.pipeline.read()
        #expect(rig.clientReads.reads == before)
        try rig.client.writeInbound(ByteBuffer(string: "x"))  // bytes already in flight still go
        #expect(try RelayRig.drain(rig.upstream) == "x")
        rig.upstream.isWritable = true
        rig.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(rig.clientReads.reads == before + 1, "the held read goes once the upstream drains")
        // The other direction is independent.
        rig.client.isWritable = false
        rig.client.pipeline.fireChannelWritabilityChanged()
        let upBefore = rig.upstreamReads.reads
        rig.upstream.pipeline.read()
        #expect(rig.upstreamReads.reads == upBefore)
        rig.client.isWritable = true
        rig.client.pipeline.fireChannelWritabilityChanged()
        #expect(rig.upstreamReads.reads == upBefore + 1)
    }

    @Test func aCloseOnEitherSideFlushesAndClosesTheOther() throws {
        for clientFirst in [true, false] {
            let rig = try RelayRig()
            let (first, other) = clientFirst ? (rig.client, rig.upstream) : (rig.upstream, rig.client)
            try first.writeInbound(ByteBuffer(string: "last words"))
            try first.close().wait()
            // What was relayed before the close arrives, then the other side closes.
            #expect(try RelayRig.drain(other) == "last words")
            #expect(!other.isActive)
            let stats = try #require(rig.ended.stats)
            #expect(stats.end == (clientFirst ? .clientClosed : .upstreamClosed))
            #expect(stats.ended != nil)
            #expect(rig.relay.isFinished)
        }
    }

    @Test func aHalfCloseEndsTheTunnel() throws {
        let rig = try RelayRig()
        try rig.upstream.writeInbound(ByteBuffer(string: "bye"))
        rig.upstream.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try RelayRig.drain(rig.client) == "bye")
        #expect(!rig.client.isActive)
        // The half-closed side is closed in turn, and the relay ends.
        #expect(!rig.upstream.isActive)
        #expect(rig.ended.stats?.end == .upstreamClosed)
    }

    @Test func idleTimeoutClosesBothSidesAndTrafficPostponesIt() throws {
        let rig = try RelayRig(idle: .seconds(10))
        rig.loop.advanceTime(by: .seconds(6))
        try rig.client.writeInbound(ByteBuffer(string: "keep"))
        rig.loop.advanceTime(by: .seconds(6))
        #expect(rig.client.isActive && rig.upstream.isActive, "traffic 6 s ago: not idle yet")
        rig.loop.advanceTime(by: .seconds(5))
        #expect(!rig.client.isActive && !rig.upstream.isActive)
        #expect(rig.ended.stats?.end == .idleTimeout)
    }

    @Test func aChannelAlreadyClosedEndsTheRelayAtOnce() throws {
        let loop = EmbeddedEventLoop()
        let client = EmbeddedChannel(loop: loop)
        let upstream = EmbeddedChannel(loop: loop)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        try upstream.close().wait()
        var ended = false
        let relay = ByteRelay(eventLoop: loop, idleTimeout: .seconds(1)) { _ in ended = true }
        relay.start(client: client, upstream: upstream, fromClient: ByteBuffer(string: "hello"), fromUpstream: nil)
        #expect(!client.isActive)
        #expect(ended)
    }
}

/// ClientHellos made byte by byte, for the parser's table tests.
enum Hello {
    static func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    static func u24(_ v: Int) -> [UInt8] { [UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    static func sniExtension(_ names: [(type: UInt8, name: [UInt8])]) -> [UInt8] {
        var list: [UInt8] = []
        for n in names { list += [n.type] + u16(n.name.count) + n.name }
        let data = u16(list.count) + list
        return u16(0) + u16(data.count) + data
    }

    static func ext(_ type: Int, _ data: [UInt8]) -> [UInt8] { u16(type) + u16(data.count) + data }

    /// The ClientHello body: version, random, session id, suites, compression, extensions.
    static func body(extensions: [UInt8]?, sessionID: Int = 32) -> [UInt8] {
        var b: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32)
        b += [UInt8(sessionID)] + [UInt8](repeating: 1, count: sessionID)
        b += u16(4) + [0x13, 0x01, 0x13, 0x02]
        b += [1, 0]
        if let e = extensions { b += u16(e.count) + e }
        return b
    }

    static func message(_ body: [UInt8], type: UInt8 = 1) -> [UInt8] { [type] + u24(body.count) + body }

    /// Handshake bytes in TLS records of at most `fragment` bytes each.
    static func records(_ message: [UInt8], fragment: Int = 16_384, type: UInt8 = 22) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < message.count {
            let n = min(fragment, message.count - i)
            out += [type, 3, 1] + u16(n) + message[i..<(i + n)]
            i += n
        }
        return out
    }

    static func withSNI(_ name: String, padding: Int = 0) -> [UInt8] {
        var exts = ext(10, [0, 4, 0, 0x1d, 0, 0x17]) + sniExtension([(0, Array(name.utf8))])
        if padding > 0 { exts += ext(21, [UInt8](repeating: 0, count: padding)) }
        return records(message(body(extensions: exts)))
    }
}

@Suite struct ClientHelloParserTests {
    static func parse(_ bytes: [UInt8], max: Int = 16_384) -> ClientHelloPeek {
        bytes.withUnsafeBytes { ClientHelloParser.parse($0, maxBytes: max) }
    }

    @Test func findsTheServerName() {
        #expect(Self.parse(Hello.withSNI("Shop.Example.COM.")) == .clientHello(serverName: "shop.example.com"))
        // No extensions at all, and extensions without server_name: no SNI.
        #expect(Self.parse(Hello.records(Hello.message(Hello.body(extensions: nil)))) == .clientHello(serverName: nil))
        #expect(Self.parse(Hello.records(Hello.message(Hello.body(extensions: Hello.ext(10, [0, 2, 0, 0x1d])))))
                == .clientHello(serverName: nil))
        // Bytes after the ClientHello (another record) are not looked at.
        #expect(Self.parse(Hello.withSNI("a.test") + [23, 3, 3, 0, 1, 0]) == .clientHello(serverName: "a.test"))
    }

    @Test(arguments: [1, 7, 64, 100])
    func reassemblesAClientHelloSplitAcrossRecords(fragment: Int) {
        let bytes = Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(0, Array("split.test".utf8))]))),
                                  fragment: fragment)
        #expect(Self.parse(bytes) == .clientHello(serverName: "split.test"))
    }

    @Test func everyPrefixNeedsMore() {
        // However the bytes are split across reads, nothing is decided before the last one.
        let bytes = Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(0, Array("reads.test".utf8))]))), fragment: 50)
        for n in 0..<bytes.count {
            #expect(Self.parse(Array(bytes[0..<n])) == .needMore, "prefix \(n)")
        }
        #expect(Self.parse(bytes) == .clientHello(serverName: "reads.test"))
    }

    static let malformed: [(String, [UInt8])] = [
        ("HTTP", Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8)),
        ("SSLv2 hello", [0x80, 0x2e, 0x01, 0x00, 0x02] + [UInt8](repeating: 0, count: 40)),
        ("application data record", [23, 3, 3, 0, 5, 1, 2, 3, 4, 5]),
        ("record version 2", [22, 2, 0, 0, 5, 1, 0, 0, 1, 0]),
        ("empty record", [22, 3, 1, 0, 0]),
        ("record over 2^14", [22, 3, 1, 0x40, 0x01]),
        ("not a ClientHello", Hello.records(Hello.message(Hello.body(extensions: nil), type: 2))),
        ("session id over 32", Hello.records(Hello.message(Hello.body(extensions: nil, sessionID: 33)))),
        ("odd suites", Hello.records(Hello.message([3, 3] + [UInt8](repeating: 0, count: 32) + [0] + Hello.u16(3) + [0, 0, 0] + [1, 0]))),
        ("no compression", Hello.records(Hello.message([3, 3] + [UInt8](repeating: 0, count: 32) + [0] + Hello.u16(2) + [0x13, 1] + [0]))),
        ("extensions length off", Hello.records(Hello.message(Hello.body(extensions: nil) + Hello.u16(10) + [0, 0]))),
        ("truncated extension", Hello.records(Hello.message(Hello.body(extensions: Hello.u16(0) + Hello.u16(40) + [0, 1])))),
        ("extension twice", Hello.records(Hello.message(Hello.body(extensions: Hello.ext(10, [0]) + Hello.ext(10, [0]))))),
        ("two host names", Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(0, Array("a.test".utf8)), (0, Array("b.test".utf8))]))))),
        ("unknown name type", Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(1, Array("a.test".utf8))]))))),
        ("empty name list", Hello.records(Hello.message(Hello.body(extensions: Hello.ext(0, Hello.u16(0)))))),
        ("space in name", Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(0, Array("a b.test".utf8))]))))),
        ("NUL in name", Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(0, [0x61, 0, 0x62])]))))),
        ("only a dot", Hello.records(Hello.message(Hello.body(extensions: Hello.sniExtension([(0, [0x2e])]))))),
        ("alert inside", Hello.records(Array(Hello.message(Hello.body(extensions: nil)).prefix(10))) + [21, 3, 3, 0, 2, 2, 40]),
    ]

    @Test(arguments: malformed)
    func refusesMalformed(name: String, bytes: [UInt8]) {
        guard case .invalid = Self.parse(bytes) else {
            Issue.record("\(name): \(Self.parse(bytes))")
            return
        }
    }

    @Test func refusesOversizedAsSoonAsTheLengthsSaySo() {
        let big = Hello.withSNI("big.test", padding: 3000)
        #expect(Self.parse(big, max: 16_384) == .clientHello(serverName: "big.test"))
        // The first record's header alone announces more than the bound.
        guard case .invalid = Self.parse(Array(big.prefix(5)), max: 1024) else { Issue.record("not refused early"); return }
        // A handshake message announcing more than the bound, in small records.
        let small = Hello.records(Hello.message(Hello.body(extensions: Hello.ext(21, [UInt8](repeating: 0, count: 3000)))), fragment: 100)
        guard case .invalid = Self.parse(Array(small.prefix(110)), max: 1024) else { Issue.record("not refused early"); return }
    }
}

/// The ClientHello peek handler with embedded channels: bytes in, a decision out.
@Suite struct ClientHelloPeekHandlerTests {
    final class Collect: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes: [UInt8] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { bytes += unwrapInboundIn(data).readableBytesView }
    }

    static let route = L4Route(id: "r", names: ["pass.test"], matchesNoSNI: false, action: .pass(pool: 0), idleTimeout: 60_000, origin: "t")
    static let pool = PoolSpec(id: "p", index: 0, endpoints: [EndpointSpec(host: "127.0.0.1", port: 1)])

    struct Rig {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let handler: ClientHelloPeekHandler
        let collect = Collect()
        final class Seen { var names: [String?] = []; var upstream: EmbeddedChannel? }
        let seen = Seen()

        init(maxBytes: Int = 16_384, decision: @escaping (String?) -> String) throws {
            channel = EmbeddedChannel(loop: loop)
            let collect = self.collect, seen = self.seen, loop = self.loop
            handler = ClientHelloPeekHandler(maxBytes: maxBytes, timeout: .seconds(5), decide: { name in
                seen.names.append(name)
                switch decision(name) {
                case "drop": return .drop(route: ClientHelloPeekHandlerTests.route)
                case "pass": return .pass(route: ClientHelloPeekHandlerTests.route, pool: ClientHelloPeekHandlerTests.pool)
                default: return .terminate { try $0.addHandler(collect) }
                }
            }, connect: { _, _, _ in
                let up = EmbeddedChannel(loop: loop)
                seen.upstream = up
                return up.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 2)).map { up as any Channel }
            })
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ bytes: [UInt8]) throws { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
    }

    @Test func terminateHandsTheHeldBytesOnAndLeaves() throws {
        let rig = try Rig { _ in "terminate" }
        let hello = Hello.withSNI("other.test")
        try rig.send(Array(hello.prefix(30)))
        #expect(rig.seen.names.isEmpty)
        try rig.send(Array(hello.dropFirst(30)))
        #expect(rig.seen.names == ["other.test"])
        #expect(rig.collect.bytes == hello)
        #expect(rig.handler.outcome == .terminated)
        #expect(throws: (any Error).self) { try rig.channel.pipeline.syncOperations.context(handler: rig.handler) }
        try rig.send([1, 2, 3])
        #expect(rig.collect.bytes == hello + [1, 2, 3])
    }

    @Test func dropCloses() throws {
        let rig = try Rig { _ in "drop" }
        try rig.send(Hello.withSNI("drop.test"))
        #expect(!rig.channel.isActive)
        #expect(rig.handler.outcome == .dropped("r"))
    }

    @Test func passRelaysTheClientHelloThenEverything() throws {
        let rig = try Rig { _ in "pass" }
        let hello = Hello.withSNI("pass.test")
        try rig.send(hello)
        let up = try #require(rig.seen.upstream)
        var got: [UInt8] = []
        while let b = try up.readOutbound(as: ByteBuffer.self) { got += b.readableBytesView }
        #expect(got == hello)
        try rig.send([9, 9])
        #expect(try up.readOutbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [9, 9])
        try up.writeInbound(ByteBuffer(bytes: [4, 2]))
        #expect(try rig.channel.readOutbound(as: ByteBuffer.self).map { Array($0.readableBytesView) } == [4, 2])
        #expect(rig.handler.outcome == .passed("r"))
    }

    @Test func malformedOversizedAndLateClientHellosClose() throws {
        let bad = try Rig { _ in "terminate" }
        try bad.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(!bad.channel.isActive)
        guard case .refused = bad.handler.outcome else { Issue.record("\(bad.handler.outcome)"); return }

        let big = try Rig(maxBytes: 600) { _ in "terminate" }
        try big.send(Array(Hello.records(Hello.message(Hello.body(extensions: Hello.ext(21, [UInt8](repeating: 0, count: 3000)))), fragment: 100).prefix(700)))
        #expect(!big.channel.isActive)

        let late = try Rig { _ in "terminate" }
        try late.send(Array(Hello.withSNI("late.test").prefix(20)))
        late.loop.advanceTime(by: .seconds(4))
        #expect(late.channel.isActive)
        late.loop.advanceTime(by: .seconds(2))
        #expect(!late.channel.isActive)
        #expect(late.handler.outcome == .timedOut)
        #expect(late.seen.names.isEmpty)
    }
}
