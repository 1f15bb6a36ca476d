import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A real HTTP/1.1 server for end-to-end tests, built on NIOHTTP1 (an implementation
/// independent of Prox's own framer). Paths:
///   /echo...            200, body lists method, target, headers and the request body size
///   /status/N           answers status N
///   /chunked?n=N        N bytes in a chunked body (several chunks)
///   /big?bytes=N        N bytes streamed with backpressure (Content-Length)
///   /bigchunked?bytes=N N bytes streamed, chunked
///   /upload             reads the body, answers its size and checksum
///   /slow?ms=N          waits N ms before answering
///   /reset-mid          sends a head promising 100000 bytes, 10 of them, then closes
///   /close-now          closes without answering
final class TestUpstream: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    let requests = NIOLockedValueBox(0)
    let connections = NIOLockedValueBox(0)
    /// When set, the next request that arrives on an already-used connection gets the connection
    /// closed instead of an answer (a pooled connection that went stale).
    let dropStale = NIOLockedValueBox(false)
    func dropConnectionsOnNextRequest() { dropStale.withLockedValue { $0 = true } }
    var port: Int { channel.localAddress!.port! }
    var address: String { "127.0.0.1:\(port)" }
    /// With `tls`: the server name of each ClientHello received (nil: no SNI), in order.
    let serverNamesSeen = NIOLockedValueBox<[String?]>([])

    /// An HTTPS upstream: its certificate and key, and when `clientCA` is set, a client
    /// certificate signed by it is required.
    struct TLS {
        var cert: String
        var key: String
        var clientCA: String?
    }

    init(threads: Int = 1, tls: TLS? = nil) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let requests = self.requests, connections = self.connections, dropStale = self.dropStale
        var sslContext: NIOSSLContext? = nil
        if let tls {
            var config = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.key, format: .pem)))
            if let ca = tls.clientCA {
                config.certificateVerification = .noHostnameVerification
                config.trustRoots = .file(ca)
            }
            let seen = serverNamesSeen
            config.sslContextCallback = { values, promise in
                seen.withLockedValue { $0.append(values.serverHostname) }
                promise.succeed(.noChanges)
            }
            sslContext = try NIOSSLContext(configuration: config)
        }
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                connections.withLockedValue { $0 += 1 }
                if let sslContext {
                    do { try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext)) } catch { return ch.eventLoop.makeFailedFuture(error) }
                }
                return ch.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    ch.pipeline.addHandler(UpstreamHandler(requests: requests, dropStale: dropStale))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

final class UpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let requests: NIOLockedValueBox<Int>
    let dropStale: NIOLockedValueBox<Bool>
    var served = 0
    var head: HTTPRequestHead?
    var bodyBytes = 0
    var checksum: UInt64 = 0xcbf2_9ce4_8422_2325

    init(requests: NIOLockedValueBox<Int>, dropStale: NIOLockedValueBox<Bool>) {
        self.requests = requests
        self.dropStale = dropStale
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            if served > 0 && dropStale.withLockedValue({ let d = $0; $0 = false; return d }) {
                context.close(promise: nil)
                return
            }
            served += 1
            head = h
            bodyBytes = 0
            checksum = 0xcbf2_9ce4_8422_2325
            requests.withLockedValue { $0 += 1 }
        case .body(let b):
            bodyBytes += b.readableBytes
            checksum = fnv1a(b, checksum)
        case .end:
            guard let h = head else { return }
            respond(context, h)
        }
    }

    func query(_ h: HTTPRequestHead, _ name: String) -> Int? {
        guard let q = h.uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for p in q.split(separator: "&") {
            let kv = p.split(separator: "=", maxSplits: 1)
            if kv.count == 2 && kv[0] == name { return Int(kv[1]) }
        }
        return nil
    }

    func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        let path = String(h.uri.split(separator: "?", maxSplits: 1).first ?? "")
        if path.hasPrefix("/status/"), let code = Int(path.dropFirst(8)) {
            send(context, status: .init(statusCode: code), body: "status \(code)\n", keepAlive: h.isKeepAlive)
        } else if path == "/chunked" {
            let n = query(h, "n") ?? 1000
            var rh = HTTPResponseHead(version: .http1_1, status: .ok)
            rh.headers.add(name: "Transfer-Encoding", value: "chunked")
            context.write(wrapOutboundOut(.head(rh)), promise: nil)
            var left = n
            var piece = 0
            while left > 0 {
                let size = min(left, 100 + piece * 37)
                var b = context.channel.allocator.buffer(capacity: size)
                b.writeRepeatingByte(UInt8(ascii: "a") + UInt8(piece % 26), count: size)
                context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
                left -= size
                piece += 1
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else if path == "/big" || path == "/bigchunked" {
            let n = query(h, "bytes") ?? 1 << 20
            var rh = HTTPResponseHead(version: .http1_1, status: .ok)
            if path == "/big" { rh.headers.add(name: "Content-Length", value: String(n)) } else { rh.headers.add(name: "Transfer-Encoding", value: "chunked") }
            context.write(wrapOutboundOut(.head(rh)), promise: nil)
            streamBig(context, left: n)
        } else if path == "/upload" {
            send(context, status: .ok, body: "bytes=\(bodyBytes) fnv=\(String(checksum, radix: 16))\n", keepAlive: h.isKeepAlive)
        } else if path == "/slow" {
            let ms = query(h, "ms") ?? 1000
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)  // the task runs on this loop
            context.eventLoop.scheduleTask(in: .milliseconds(Int64(ms))) {
                self.send(bound.value, status: .ok, body: "slow \(ms)\n", keepAlive: h.isKeepAlive)
            }
        } else if path == "/reset-mid" {
            var rh = HTTPResponseHead(version: .http1_1, status: .ok)
            rh.headers.add(name: "Content-Length", value: "100000")
            context.write(wrapOutboundOut(.head(rh)), promise: nil)
            var b = context.channel.allocator.buffer(capacity: 10)
            b.writeString("0123456789")
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)  // callbacks run on this loop
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(b)))).whenComplete { _ in
                bound.value.eventLoop.scheduleTask(in: .milliseconds(20)) { bound.value.close(promise: nil) }
            }
        } else if path == "/dated" {
            // An upstream that dates its answers: Prox must keep this one and add none.
            var rh = HTTPResponseHead(version: .http1_1, status: .ok)
            rh.headers.add(name: "Date", value: "Sun, 06 Nov 1994 08:49:37 GMT")
            rh.headers.add(name: "Content-Length", value: "6")
            context.write(wrapOutboundOut(.head(rh)), promise: nil)
            var b = context.channel.allocator.buffer(capacity: 6)
            b.writeString("dated\n")
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else if path == "/close-now" {
            context.close(promise: nil)
        } else {
            var text = "method=\(h.method.rawValue)\ntarget=\(h.uri)\nversion=\(h.version)\nbody=\(bodyBytes)\n"
            for (n, v) in h.headers { text += "h:\(n.lowercased())=\(v)\n" }
            send(context, status: .ok, body: text, keepAlive: h.isKeepAlive)
        }
    }

    func streamBig(_ context: ChannelHandlerContext, left: Int) {
        if left == 0 {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let size = min(left, 64 * 1024)
        var b = context.channel.allocator.buffer(capacity: size)
        b.writeRepeatingByte(UInt8(ascii: "x"), count: size)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)  // the callback runs on this loop
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(b)))).whenComplete { r in
            if case .success = r { self.streamBig(bound.value, left: left - size) }
        }
    }

    func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body: String, keepAlive: Bool) {
        var rh = HTTPResponseHead(version: .http1_1, status: status)
        rh.headers.add(name: "Content-Length", value: String(body.utf8.count))
        rh.headers.add(name: "X-Upstream", value: "test")
        if !keepAlive { rh.headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(rh)), promise: nil)
        var b = context.channel.allocator.buffer(capacity: body.utf8.count)
        b.writeString(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(b))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)  // the callback runs on this loop
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { bound.value.close(promise: nil) }
        }
    }
}

func fnv1a(_ b: ByteBuffer, _ seed: UInt64) -> UInt64 {
    var h = seed
    b.withUnsafeReadableBytes { p in
        for x in p { h = (h ^ UInt64(x)) &* 0x100_0000_01b3 }
    }
    return h
}
