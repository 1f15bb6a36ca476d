import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A real WebSocket upstream on SwiftNIO (NIOWebSocket's server upgrader): it echoes text and
/// binary messages, answers a client's close with a close and closes, and on `/server-close`
/// closes first. A request it does not upgrade (`/deny`, or one without `Upgrade`) gets a plain
/// HTTP answer saying whether it asked to upgrade. Frames up to 32 MiB.
final class WebSocketEchoServer: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: any Channel
    /// The headers of every request it was sent, lowercased names.
    let requests = NIOLockedValueBox<[[(String, String)]]>([])
    static let maxFrame = 1 << 25

    var address: String { "127.0.0.1:\(channel.localAddress!.port!)" }

    init() throws {
        let requests = self.requests
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: Self.maxFrame,
                    shouldUpgrade: { ch, head in
                        ch.eventLoop.makeSucceededFuture(head.uri == "/deny" ? nil : HTTPHeaders([("X-Upstream", "ws-echo")]))
                    },
                    upgradePipelineHandler: { ch, head in
                        ch.eventLoop.makeCompletedFuture {
                            // The HTTP answering end goes: frames are not requests.
                            let answer = try ch.pipeline.syncOperations.handler(type: Answer.self)
                            ch.pipeline.syncOperations.removeHandler(answer, promise: nil)
                            try ch.pipeline.syncOperations.addHandler(EchoFrames(closeFirst: head.uri == "/server-close"))
                        }
                    })
                return ch.pipeline.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    .flatMap { ch.pipeline.addHandler(PlainAnswer(requests: requests), position: .first) }
                    .flatMap { ch.eventLoop.makeSucceededVoidFuture() }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Records each request head (first in the pipeline, it sees raw bytes: parses the head
    /// lines itself), then answers requests the upgrader let through.
    final class PlainAnswer: ChannelDuplexHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundIn = ByteBuffer
        let requests: NIOLockedValueBox<[[(String, String)]]>
        var seen = false
        init(requests: NIOLockedValueBox<[[(String, String)]]>) { self.requests = requests }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let b = unwrapInboundIn(data)
            if !seen, let text = b.getString(at: b.readerIndex, length: b.readableBytes), let end = text.range(of: "\r\n\r\n") {
                seen = true
                let lines = text[..<end.lowerBound].components(separatedBy: "\r\n").dropFirst()
                requests.withLockedValue { $0.append(lines.compactMap { l in
                    guard let c = l.firstIndex(of: ":") else { return nil }
                    return (l[..<c].lowercased(), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces))
                }) }
                context.fireChannelRead(data)
                // Not upgraded (no Upgrade, or refused): the HTTP server handlers pass the request
                // on to the end of the pipeline, where `Answer` replies.
                return
            }
            context.fireChannelRead(data)
        }

        func handlerAdded(context: ChannelHandlerContext) {
            // The answering end of the HTTP pipeline.
            try? context.pipeline.syncOperations.addHandler(Answer())
        }
    }

    final class Answer: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        var head: HTTPRequestHead?
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { return }
                let asked = h.headers["upgrade"].first ?? "none"
                let body = "plain upgrade=\(asked)\n"
                var headers = HTTPHeaders([("Content-Length", "\(body.utf8.count)")])
                headers.add(name: "X-Upstream", value: "plain")
                let refused = h.uri == "/deny"
                // SwiftNIO's server upgrade handler does not serve a second request on a
                // connection whose upgrade it refused: close it.
                if refused { headers.add(name: "Connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: refused ? .forbidden : .ok, headers: headers))),
                              promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if refused { context.close(promise: nil) }
                }
            }
        }
    }

    /// Echoes messages; answers a close with a close, then closes the connection. With
    /// `closeFirst`, starts the closing handshake itself and closes once the client answers.
    final class EchoFrames: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame
        let closeFirst: Bool
        init(closeFirst: Bool) { self.closeFirst = closeFirst }

        func handlerAdded(context: ChannelHandlerContext) {
            guard closeFirst else { return }
            var code = ByteBuffer()
            code.write(webSocketErrorCode: .goingAway)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text, .binary:
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: frame.opcode, data: frame.unmaskedData)), promise: nil)
            case .connectionClose where closeFirst:
                context.close(promise: nil)
            case .connectionClose:
                var code = ByteBuffer()
                code.write(webSocketErrorCode: .normalClosure)
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))).whenComplete { _ in
                    context.close(promise: nil)
                }
            default:
                break
            }
        }
    }
}

/// A real WebSocket client on SwiftNIO (NIOWebSocket's client upgrader, which checks the
/// server's `Sec-WebSocket-Accept`): connects, asks to upgrade `path`, then sends and receives
/// whole messages. When the answer is not a `101`, `status` holds it.
final class WebSocketTestClient: @unchecked Sendable {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: any Channel
    let frames = NIOLockedValueBox<[WebSocketFrame]>([])
    let upgraded = NIOLockedValueBox(false)
    let closed = NIOLockedValueBox(false)
    /// The status and body of a non-101 answer.
    let answer = NIOLockedValueBox<(Int, String)?>(nil)

    final class Frames: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = WebSocketFrame
        let client: WebSocketTestClient
        init(_ c: WebSocketTestClient) { client = c }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let f = unwrapInboundIn(data)
            client.frames.withLockedValue { $0.append(f) }
        }
        func channelInactive(context: ChannelHandlerContext) { client.closed.withLockedValue { $0 = true } }
    }

    /// Sees a non-upgrade answer, and the close.
    final class Watch: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let client: WebSocketTestClient
        var status = 0
        var body = ""
        init(_ c: WebSocketTestClient) { client = c }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): status = Int(h.status.code)
            case .body(let b): body += String(buffer: b)
            case .end: client.answer.withLockedValue { $0 = (status, body) }
            }
        }
        func channelInactive(context: ChannelHandlerContext) {
            client.closed.withLockedValue { $0 = true }
            context.fireChannelInactive()
        }
    }

    init(port: Int, path: String = "/", headers: [(String, String)] = [], timeout: TimeInterval = 10) throws {
        let box = NIOLockedValueBox<WebSocketTestClient?>(nil)
        let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: WebSocketEchoServer.maxFrame) { ch, _ in
            ch.eventLoop.makeCompletedFuture {
                let me = box.withLockedValue { $0 }!
                // The HTTP watcher sits before the frame decoder: bytes are not responses now.
                ch.pipeline.syncOperations.removeHandler(try ch.pipeline.syncOperations.handler(type: Watch.self), promise: nil)
                try ch.pipeline.syncOperations.addHandler(Frames(me))
                me.upgraded.withLockedValue { $0 = true }
            }
        }
        let ready = NIOLockedValueBox<Watch?>(nil)
        channel = try ClientBootstrap(group: Self.group)
            .channelInitializer { ch in
                ch.pipeline.addHTTPClientHandlers(leftOverBytesStrategy: .forwardBytes,
                                                  withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            }
            .connect(host: "127.0.0.1", port: port).wait()
        box.withLockedValue { $0 = self }
        let watch = Watch(self)
        ready.withLockedValue { $0 = watch }
        try channel.pipeline.addHandler(watch).wait()
        var h = HTTPHeaders([("Host", "ws.test"), ("Content-Length", "0")])
        for (n, v) in headers { h.add(name: n, value: v) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: h)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try channel.writeAndFlush(HTTPClientRequestPart.end(nil)).wait()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if upgraded.withLockedValue({ $0 }) || answer.withLockedValue({ $0 }) != nil { return }
            if closed.withLockedValue({ $0 }) { throw TestError("closed before the handshake's answer") }
            usleep(1_000)
        }
        throw TestError("no handshake answer within \(timeout) s")
    }

    var isUpgraded: Bool { upgraded.withLockedValue { $0 } }
    var isClosed: Bool { closed.withLockedValue { $0 } }

    func send(_ opcode: WSOp, _ data: ByteBuffer) throws {
        let frame = WebSocketFrame(fin: true, opcode: opcode.opcode, maskKey: .random(), data: data)
        try channel.writeAndFlush(frame).wait()
    }

    func sendClose() throws {
        var code = ByteBuffer()
        code.write(webSocketErrorCode: .normalClosure)
        try send(.close, code)
    }

    /// The next whole frame received.
    func receive(timeout: TimeInterval = 20) throws -> WebSocketFrame {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let f = frames.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) { return f }
            if isClosed { throw TestError("closed") }
            usleep(1_000)
        }
        throw TestError("no frame within \(timeout) s")
    }

    func waitForClose(timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if isClosed { return true }
            usleep(1_000)
        }
        return false
    }

    func close() { try? channel.close().wait() }
}

/// The opcodes the tests send.
enum WSOp {
    case text, binary, close
    var opcode: WebSocketOpcode {
        switch self {
        case .text: return .text
        case .binary: return .binary
        case .close: return .connectionClose
        }
    }
}
