import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxCore

/// Why a call to the external service failed; each maps to an `X-Prox-Error` category.
enum ExtFilterFailure: Error, Equatable {
    case timeout
    /// Connection refused or reset, the service closed before answering, or too many calls.
    case unavailable(String)
    /// An answer that is not HTTP, or too large.
    case badAnswer(String)

    var category: String {
        switch self {
        case .timeout: return "ext_filter_timeout"
        case .unavailable: return "ext_filter_unavailable"
        case .badAnswer: return "ext_filter_bad_answer"
        }
    }

    var detail: String {
        switch self {
        case .timeout: return "no answer in time"
        case .unavailable(let d), .badAnswer(let d): return d
        }
    }
}

/// The service's HTTP answer, before its body is read as a verdict.
struct ExtFilterAnswer {
    var status: Int
    var body: ByteBuffer
}

/// The head of every call to `url` but for its Content-Length: made once, when the stage is
/// built (each `HTTPHeaders.add` validates its strings, about 400 instructions a header).
func extFilterRequestHead(_ url: ExtFilterURL) -> HTTPRequestHead {
    var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.path)
    head.headers.add(name: "Host", value: url.hostHeader)
    head.headers.add(name: "Content-Type", value: "application/json")
    head.headers.add(name: "Accept", value: "application/json")
    head.headers.add(name: "User-Agent", value: "prox-ext-filter")
    return head
}

/// An external filter service: its address and its keep-alive connections, one set per event
/// loop. Kept in `ExtFilterServices` by address, so a reload that keeps the URL keeps the
/// connections (ARCHITECTURE.md contract 3).
public final class ExtFilterService: Sendable {
    let host: String
    let port: Int
    /// Each event loop's connections: a loop runs on one thread, so a thread-specific value is
    /// the loop's own, reached without a lock.
    private let perLoop = ThreadSpecificVariable<ExtFilterConnections>()

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// This loop's connections (call on `loop`).
    func connections(on loop: any EventLoop) -> ExtFilterConnections {
        if let c = perLoop.currentValue { return c }
        let c = ExtFilterConnections(host: host, port: port, eventLoop: loop)
        perLoop.currentValue = c
        return c
    }
}

/// The services of every config loaded so far, by `host:port`. Touched at compile time only.
public enum ExtFilterServices {
    private static let services = NIOLockedValueBox<[String: ExtFilterService]>([:])

    static func service(host: String, port: Int) -> ExtFilterService {
        services.withLockedValue { all in
            let key = "\(host):\(port)"
            if let s = all[key] { return s }
            let s = ExtFilterService(host: host, port: port)
            all[key] = s
            return s
        }
    }
}

/// One event loop's connections to one service: an idle list (newest last) and a count of calls
/// in flight. Confined to its loop's thread (it is reached only through the thread-specific
/// variable above, and its channels' callbacks run on the same loop), hence unchecked Sendable.
final class ExtFilterConnections: @unchecked Sendable {
    let host: String
    let port: Int
    let eventLoop: any EventLoop
    private var address: SocketAddress?
    private var idle: [ExtFilterChannelHandler] = []
    private(set) var inFlight = 0

    init(host: String, port: Int, eventLoop: any EventLoop) {
        self.host = host
        self.port = port
        self.eventLoop = eventLoop
    }

    var idleCount: Int { idle.count }

    /// Sends `request` (a whole HTTP/1.1 request, serialized) and yields the answer. At most
    /// `maxConnections` calls run at once; a stale idle connection (closed by the service before
    /// it answered anything) is retried once on a fresh one. Call on the loop.
    func call(_ json: ByteBuffer, head: HTTPRequestHead, timeout: TimeAmount, maxIdle: Int, maxConnections: Int) -> EventLoopFuture<ExtFilterAnswer> {
        guard inFlight < maxConnections else {
            return eventLoop.makeFailedFuture(ExtFilterFailure.unavailable("\(inFlight) calls in flight on this event loop (max_connections)"))
        }
        inFlight += 1
        var head = head
        head.headers.add(name: "Content-Length", value: String(json.readableBytes))
        let call = ExtFilterCall(head: head, body: json, promise: eventLoop.makePromise(), maxIdle: maxIdle, timeout: timeout)
        let timer = eventLoop.scheduleTask(in: timeout) { call.fail(.timeout) }
        call.promise.futureResult.whenComplete { _ in
            self.inFlight -= 1
            timer.cancel()
        }
        send(call)
        return call.promise.futureResult
    }

    private func send(_ call: ExtFilterCall) {
        while let h = idle.popLast() {
            if h.isUsable {
                h.start(call, reused: true)
                return
            }
            h.close()
        }
        connect(call)
    }

    /// A stale pooled connection closed unanswered: once more, on a new connection.
    func retryFresh(_ call: ExtFilterCall) {
        connect(call)
    }

    private func connect(_ call: ExtFilterCall) {
        let address: SocketAddress
        do {
            if let a = self.address {
                address = a
            } else if let ip = try? SocketAddress(ipAddress: host, port: port) {
                address = ip
            } else {
                // Names are resolved once per loop and kept (a blocking lookup, once).
                address = try SocketAddress.makeAddressResolvingHost(host, port: port)
            }
            self.address = address
        } catch {
            call.fail(.unavailable("cannot resolve \(host): \(error)"))
            return
        }
        let handler = ExtFilterChannelHandler(connections: self)
        ClientBootstrap(group: eventLoop)
            .connectTimeout(call.timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(to: address)
            .whenComplete { result in
                switch result {
                case .success:
                    if call.done { handler.close() } else { handler.start(call, reused: false) }
                case .failure(let error):
                    call.fail(.unavailable("cannot connect to \(self.host):\(self.port): \(error)"))
                }
            }
    }

    /// A connection finished a call cleanly: keep it for the next, if there is room.
    func release(_ h: ExtFilterChannelHandler, maxIdle: Int) {
        if idle.count < maxIdle && h.isUsable {
            idle.append(h)
        } else {
            h.close()
        }
    }

    func forget(_ h: ExtFilterChannelHandler) {
        idle.removeAll { $0 === h }
    }
}

/// One call: the request and the promise its answer completes. Finished once.
final class ExtFilterCall: @unchecked Sendable {
    let head: HTTPRequestHead
    let body: ByteBuffer
    let promise: EventLoopPromise<ExtFilterAnswer>
    let maxIdle: Int
    let timeout: TimeAmount
    private(set) var done = false
    /// The connection carrying the call, to close on a timeout.
    weak var carrier: ExtFilterChannelHandler?

    init(head: HTTPRequestHead, body: ByteBuffer, promise: EventLoopPromise<ExtFilterAnswer>, maxIdle: Int, timeout: TimeAmount) {
        self.head = head
        self.body = body
        self.promise = promise
        self.maxIdle = maxIdle
        self.timeout = timeout
    }

    func fail(_ f: ExtFilterFailure) {
        guard !done else { return }
        done = true
        // A connection in the middle of a call cannot be reused.
        carrier?.close()
        promise.fail(f)
    }

    func succeed(_ a: ExtFilterAnswer) {
        guard !done else { return }
        done = true
        promise.succeed(a)
    }
}

/// The end of an ext_filter connection's pipeline, after NIOHTTP1's client codec: one call
/// at a time; the answer's body is collected (up to `maxAnswerBytes`).
final class ExtFilterChannelHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// The largest answer body read; a larger one is a bad answer.
    static let maxAnswerBytes = 1 << 20

    private let connections: ExtFilterConnections
    private var context: ChannelHandlerContext?
    private var call: ExtFilterCall?
    private var reused = false
    private var receivedAny = false
    private var status = 0
    private var keepAlive = false
    private var body = ByteBuffer()
    private var closed = false

    init(connections: ExtFilterConnections) {
        self.connections = connections
    }

    var isUsable: Bool { !closed && call == nil && (context?.channel.isActive ?? false) }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func start(_ call: ExtFilterCall, reused: Bool) {
        guard let context, !closed else {
            if reused { connections.retryFresh(call) } else { call.fail(.unavailable("the connection closed")) }
            return
        }
        self.call = call
        self.reused = reused
        receivedAny = false
        status = 0
        body.clear()
        call.carrier = self
        context.write(wrapOutboundOut(.head(call.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(call.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func close() {
        guard !closed else { return }
        closed = true
        connections.forget(self)
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receivedAny = true
        guard let call else { close(); return }  // an answer nobody asked for
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            keepAlive = head.isKeepAlive
        case .body(var part):
            if body.readableBytes + part.readableBytes > Self.maxAnswerBytes {
                call.fail(.badAnswer("the answer is over \(Self.maxAnswerBytes) bytes"))
                return
            }
            body.writeBuffer(&part)
        case .end:
            self.call = nil
            call.carrier = nil
            let answer = ExtFilterAnswer(status: status, body: body)
            body = ByteBuffer()
            if call.done {
                close()
                return
            }
            call.succeed(answer)
            if keepAlive { connections.release(self, maxIdle: call.maxIdle) } else { close() }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        connections.forget(self)
        if let call {
            self.call = nil
            call.carrier = nil
            if reused && !receivedAny && !call.done {
                // The service closed an idle connection as the call went out: not an answer.
                connections.retryFresh(call)
            } else {
                call.fail(.unavailable("the service closed the connection before answering"))
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let call {
            self.call = nil
            call.carrier = nil
            call.fail(.badAnswer("the answer is not valid HTTP/1.1: \(error)"))
        }
        close()
    }
}
