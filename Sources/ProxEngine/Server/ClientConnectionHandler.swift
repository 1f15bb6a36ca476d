import NIOCore
import ProxCore

/// The handler at the end of a client connection's pipeline: frames requests with the strict
/// HTTP/1 parser, runs each through `RequestFlow`, and carries out the step (a local answer or
/// a proxied exchange with streaming in both directions).
///
/// One request is handled at a time; pipelined requests wait in `inbox` until the response
/// before them is complete, so responses keep their order. Everything runs on the connection's
/// event loop.
final class ClientConnectionHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let state: LoopState
    let listenerIndex: Int
    let client: IPAddress
    let clientPort: Int
    let clientIPText: String
    /// Set in `handlerAdded`, cleared in `handlerRemoved`: the context holds this handler
    /// strongly, so keeping it past removal is a cycle that leaks the handler, its context and
    /// everything they hold, for every closed connection (issue 6).
    private var context: ChannelHandlerContext!
    /// The channel's allocator, fetched once: reaching it through the channel costs retains.
    private var allocator = ByteBufferAllocator()
    private var parser: HTTP1RequestParser
    private var inbox = ByteBuffer()
    private(set) var exchange: Exchange?
    private var closeAfterResponse = false
    private var closed = false
    // Read pausing: `read` is held back while paused, so the kernel pushes back on the peer.
    private var readsPaused = false
    private var readPending = false
    private var wroteToUpstream = false
    private var wroteToClient = false
    /// When the connection went idle (keep-alive) or when the current head started arriving.
    private var idleSince: NIODeadline
    private var headStartedAt: NIODeadline?
    private var serverName: String { state.snapshot.settings.serverName }
    /// Bytes of later pipelined requests held while one is served; beyond this, reading pauses.
    static let maxBufferedPipeline = 64 * 1024
    /// Body bytes held while the upstream connection is being made; beyond this, reading pauses.
    static let maxPendingBody = 256 * 1024

    init(state: LoopState, listener: ListenerSpec, client: IPAddress, clientPort: Int) {
        self.state = state
        self.listenerIndex = listener.index
        self.client = client
        self.clientPort = clientPort
        self.clientIPText = client.description
        self.parser = HTTP1RequestParser(limits: HTTP1Limits(listener: listener))
        self.idleSince = .now()
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.allocator = context.channel.allocator
        state.connections[ObjectIdentifier(self)] = self
        state.track(self, .clientHandler)
        state.track(context, .channelContext)
        state.track(context.channel as AnyObject, .channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // After removal only late callbacks can reach this handler, and they check `closed`.
        closed = true
        state.connections[ObjectIdentifier(self)] = nil
        exchange = nil
        inbox = ByteBuffer()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        state.connections[ObjectIdentifier(self)] = nil
        if let ex = exchange {
            // The client went away mid-exchange: abandon the upstream (never reuse it) and log 499.
            if let up = ex.upstream { up.finish(); up.close(); ex.upstream = nil }
            ex.errorCategory = "client_closed"
            if !ex.responseStarted { ex.status = 499 }
            finishExchange(ex, keepAlive: false, log: true)
        }
        exchange = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        if inbox.readableBytes == 0 { inbox = buf } else { inbox.writeBuffer(&buf) }
        let now = NIODeadline.now()
        if let ex = exchange { ex.lastClientActivity = now } else if headStartedAt == nil { headStartedAt = now }
        process()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending()
    }

    private func flushPending() {
        if wroteToUpstream {
            wroteToUpstream = false
            exchange?.upstream?.flush()
        }
        if wroteToClient {
            wroteToClient = false
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // The client drained: let the upstream send again.
        if context.channel.isWritable, let up = exchange?.upstream { up.setAutoRead(true) }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused { readPending = true; return }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func pauseReads() { readsPaused = true }

    private func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if readPending {
            readPending = false
            context.read()
        }
    }

    // MARK: framing

    /// Feeds buffered bytes to the parser until it needs more, or a request is being served
    /// whose body has been fully read (the next pipelined request waits its turn).
    private func process() {
        state.headerSpares.lend(to: &parser)
        while !closed {
            // While a request is served, its body is read; the next pipelined request waits.
            if let ex = exchange, ex.requestEnded { break }
            if exchange == nil && closeAfterResponse { break }
            guard var ev = parser.next(&inbox) else { break }
            switch ev {
            case .head(let head):
                // Drop the event's reference so the context owns the head alone: its arrays are
                // then edited in place, not copied on first write.
                ev = .end
                headStartedAt = nil
                startRequest(head)
            case .body(let body):
                requestBody(body)
            case .end:
                requestEnd()
            case .error(let e):
                malformed(e)
                return
            }
        }
        if exchange != nil && inbox.readableBytes > Self.maxBufferedPipeline { pauseReads() }
        // Let go of a consumed read buffer now, not at the next read: SwiftNIO reuses its receive
        // buffer only when nothing else holds it, and otherwise keeps a second one per connection.
        if inbox.readableBytes == 0 { inbox = state.emptyBuffer }
    }

    private func malformed(_ e: HTTP1ParseError) {
        if let ex = exchange {
            // The error is in the body of the request being served (say, a bad chunk).
            if let up = ex.upstream { up.finish(); up.close() }
            if !ex.responseStarted {
                respondLocal(ex, RequestFlow.errorResponse(ex.ctx, e.status, e.category, detail: e.detail), forceClose: true)
            } else {
                ex.errorCategory = e.category
                abort(ex)
            }
            return
        }
        // A bad head: answer with no route, no chain, and close.
        let ex = makeExchange(RequestHead.make(method: .get, target: "/", headers: []))
        ex.errorCategory = e.category
        exchange = ex
        respondLocal(ex, RequestFlow.errorResponse(ex.ctx, e.status, e.category, detail: e.detail), forceClose: true, malformedHead: true)
    }

    private func listenerSpec(_ s: Snapshot) -> ListenerSpec {
        listenerIndex < s.listeners.count ? s.listeners[listenerIndex] : s.listeners[0]
    }

    // MARK: requests

    private func startRequest(_ head: consuming RequestHead) {
        let ex = makeExchange(head)
        exchange = ex
        carryOut(ex, RequestFlow.begin(ex.ctx))
    }

    private func makeExchange(_ head: consuming RequestHead) -> Exchange {
        // The one snapshot read for this request.
        let snapshot = state.snapshot
        let ctx = RequestContext(head: head, snapshot: snapshot, listener: listenerSpec(snapshot), client: client,
                                 clientPort: clientPort, clientIPText: clientIPText, eventLoop: context.eventLoop)
        let ex = Exchange(ctx: ctx, now: .now())
        state.track(ex, .exchange)
        state.track(ctx, .requestContext)
        return ex
    }

    private func carryOut(_ ex: Exchange, _ step: FlowStep) {
        guard exchange === ex else { return }
        switch step {
        case .respond(let r):
            respondLocal(ex, r)
        case .proxy(let pool):
            startProxy(ex, pool)
        case .suspend(let future):
            ex.phase = .chain
            // Strong captures here and below: a weak reference would give the handler a side
            // table, which slows every retain and release of it (measured with perf).
            future.hop(to: context.eventLoop).whenComplete { result in
                guard self.exchange === ex else { return }
                switch result {
                case .success(let v): self.carryOut(ex, RequestFlow.resume(ex.ctx, with: v))
                case .failure(let err):
                    self.respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 500, "stage_failed", detail: "\(err)"))
                }
                self.flushPending()
            }
        }
    }

    private func respondLocal(_ ex: Exchange, _ r: LocalResponse, forceClose: Bool = false, malformedHead: Bool = false) {
        let head = RequestFlow.responseHead(for: r, ex.ctx, serverName: serverName)
        ex.status = head.status
        if !r.category.isEmpty {
            ex.errorCategory = r.category
            if head.status >= 500 { logFailure(ex, r.category, detail: r.detail) }
        }
        // A request whose body has not been read cannot be followed by another on this connection.
        let keepAlive = !forceClose && !malformedHead && ex.ctx.head.keepAlive && ex.requestEnded && !state.draining && !closeAfterResponse
        var out = allocator.buffer(capacity: 256 + r.body.utf8.count)
        HTTP1Writer.writeResponseHead(head, framing: head.framing, keepAlive: keepAlive,
                                      clientVersionMinor: ex.ctx.head.versionMinor, into: &out)
        if ex.ctx.head.method != .head { out.writeString(r.body) }
        ex.bytesOut = Int64(out.readableBytes)
        ex.responseStarted = true
        context.write(wrapOutboundOut(out), promise: nil)
        wroteToClient = true
        finishExchange(ex, keepAlive: keepAlive, log: true)
    }

    private func startProxy(_ ex: Exchange, _ pool: PoolSpec) {
        let ctx = ex.ctx
        if ctx.head.expectContinue && !ex.requestEnded {
            var b = allocator.buffer(capacity: 25)
            b.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
            context.write(wrapOutboundOut(b), promise: nil)
            wroteToClient = true
        }
        RequestFlow.prepareUpstreamHead(ctx, serverName: serverName)
        let framing: BodyFraming
        switch ctx.head.framing {
        case .chunked: framing = .chunked; ex.upstreamChunked = true
        case .contentLength(let n): framing = .contentLength(n)
        case .none, .untilClose: framing = .none
        }
        // Room for the head with its forwarding lines: no regrowth.
        var head = state.upstreamHeadBuffers.take(allocator)
        ctx.withHead { HTTP1Writer.writeRequestHead($0, framing: framing, into: &head) }
        ex.upstreamHead = head
        ex.retryable = ctx.head.method.isIdempotent && ctx.head.framing == .none
        ex.pool = pool
        connectUpstream(ex, pool, excluding: nil, allowIdle: true)
    }

    private func connectUpstream(_ ex: Exchange, _ pool: PoolSpec, excluding: Int?, allowIdle: Bool) {
        ex.phase = .connecting
        ex.attempts += 1
        let runtime = ex.runtime ?? state.upstreams.runtime(pool, version: ex.ctx.snapshot.version, balancers: state.balancers)
        ex.runtime = runtime
        let balancer = runtime.balancer
        guard let choice = balancer.balancer.pick(excluding: excluding) else {
            respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 503, "no_upstream_endpoint", detail: "pool \(pool.id) has no eligible endpoint"))
            return
        }
        if ex.endpointIndex >= 0 { balancer.balancer.finished(ex.endpointIndex) }
        ex.endpointIndex = choice.index
        balancer.balancer.started(choice.index)
        let connections = runtime.endpoints[choice.index]
        ex.ctx.endpoint = connections.address
        if allowIdle, let c = state.upstreams.takeIdle(connections) {
            attach(ex, c, reused: true)
            return
        }
        let endpoint = pool.endpoints[choice.index]
        let perLoop = max(1, (pool.maxConnectionsPerEndpoint + state.loopCount - 1) / state.loopCount)
        guard connections.open < perLoop else {
            respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 503, "upstream_max_connections",
                                                       detail: "\(endpoint.address) has \(pool.maxConnectionsPerEndpoint) connections open"))
            return
        }
        state.upstreams.connect(connections, endpoint, pool: pool).whenComplete { result in
            guard self.exchange === ex, !self.closed else {
                if case .success(let c) = result { self.state.upstreams.release(c, pool: pool) }
                return
            }
            switch result {
            case .success(let c):
                self.attach(ex, c, reused: false)
            case .failure(let err):
                if case UpstreamFailure.connectTimeout(let d) = err {
                    self.respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 504, "upstream_connect_timeout", detail: d))
                } else if case UpstreamFailure.connectFailed(let d) = err {
                    self.respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 502, "upstream_connect_failed", detail: d))
                } else {
                    self.respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 502, "upstream_connect_failed", detail: "\(err)"))
                }
            }
            self.flushPending()
        }
    }

    private func attach(_ ex: Exchange, _ c: UpstreamConnection, reused: Bool) {
        ex.upstream = c
        ex.upstreamReused = reused
        c.begin(method: ex.ctx.head.method, delegate: self)
        if ex.pending.isEmpty && !(ex.requestEnded && ex.upstreamChunked) {
            // The common case, a request without a body: the head goes in one pipeline trip.
            c.writeAndFlush(ex.upstreamHead)
        } else {
            c.write(ex.upstreamHead)
            for chunk in ex.pending { writeBodyUpstream(ex, chunk) }
            ex.pending = []
            ex.pendingBytes = 0
            if ex.requestEnded && ex.upstreamChunked { writeLastChunkUpstream(ex) }
            c.flush()
        }
        let now = NIODeadline.now()
        ex.phase = .awaitingResponse
        ex.upstreamSentAt = now
        if ex.requestEnded { ex.requestSentAt = now }
        ex.lastUpstreamActivity = now
        if !c.isWritable { pauseReads() } else { resumeReads() }
    }

    private func requestBody(_ body: ByteBuffer) {
        guard let ex = exchange else { return }
        ex.bodyBytes += Int64(body.readableBytes)
        if let limit = ex.ctx.requestBodyLimit, ex.bodyBytes > limit {
            if let up = ex.upstream { up.finish(); up.close(); ex.upstream = nil }
            if !ex.responseStarted {
                respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 413, "body_too_large", detail: "the limit is \(limit) bytes"), forceClose: true)
            } else {
                ex.errorCategory = "body_too_large"
                abort(ex)
            }
            return
        }
        switch ex.phase {
        case .awaitingResponse, .streamingResponse:
            guard ex.upstream != nil else { return }
            writeBodyUpstream(ex, body)
            wroteToUpstream = true
            if !(ex.upstream?.isWritable ?? true) { pauseReads() }
        case .chain, .connecting:
            ex.pending.append(body)
            ex.pendingBytes += body.readableBytes
            if ex.pendingBytes > Self.maxPendingBody { pauseReads() }
        case .done:
            break
        }
    }

    private func requestEnd() {
        guard let ex = exchange else { return }
        ex.requestEnded = true
        if let _ = ex.upstream, ex.upstreamChunked, ex.phase == .awaitingResponse || ex.phase == .streamingResponse {
            writeLastChunkUpstream(ex)
            wroteToUpstream = true
        }
        if ex.upstream != nil { ex.requestSentAt = .now() }
        if ex.phase == .done {
            // The response already went out while the body was arriving.
            exchange = nil
        }
    }

    private func writeBodyUpstream(_ ex: Exchange, _ body: ByteBuffer) {
        guard let up = ex.upstream, body.readableBytes > 0 else { return }
        if ex.upstreamChunked {
            var h = allocator.buffer(capacity: 16)
            HTTP1Writer.writeChunkHeader(size: body.readableBytes, into: &h)
            up.write(h)
            up.write(body)
            var crlf = allocator.buffer(capacity: 2)
            crlf.writeStaticString("\r\n")
            up.write(crlf)
        } else {
            up.write(body)
        }
    }

    private func writeLastChunkUpstream(_ ex: Exchange) {
        var b = allocator.buffer(capacity: 5)
        b.writeStaticString("0\r\n\r\n")
        ex.upstream?.write(b)
    }

    // MARK: upstream events

    func upstreamInformational(_ c: UpstreamConnection, _ head: ResponseHead) {
        // Prox answered 100 Continue itself; other interim responses are not relayed yet.
    }

    func upstreamHead(_ c: UpstreamConnection, _ head: consuming ResponseHead) {
        guard let ex = exchange, ex.upstream === c else { return }
        let now = NIODeadline.now()
        ex.upstreamDoneAt = now
        ex.lastUpstreamActivity = now
        if let route = ex.ctx.route { route.chain.runResponse(ex.ctx, &head, ranCount: ex.ctx.stagesRun) }
        var framing = head.framing
        let noBody = ex.ctx.head.method == .head || head.status == 204 || head.status == 304
        var keepAlive = ex.ctx.head.keepAlive && !state.draining && !closeAfterResponse && ex.requestEnded
        switch framing {
        case .untilClose:
            if ex.ctx.head.versionMinor >= 1 { framing = .chunked } else { keepAlive = false }
        case .chunked where ex.ctx.head.versionMinor == 0:
            // An HTTP/1.0 client cannot read chunked: the body ends when the connection closes.
            framing = .untilClose
            keepAlive = false
        default: break
        }
        // HEAD, 204 and 304 carry no body: the parser kept a received Content-Length line.
        if noBody { framing = .none }
        ex.clientChunked = !noBody && framing == .chunked
        ex.clientNoBody = noBody
        ex.keepAlive = keepAlive
        ex.status = head.status
        var out = state.responseHeadBuffer.take() ?? allocator.buffer(capacity: 1024)  // head plus a small coalesced body
        out.clear()
        HTTP1Writer.writeResponseHead(head, framing: framing, keepAlive: keepAlive,
                                      clientVersionMinor: ex.ctx.head.versionMinor, into: &out)
        c.recycle(&head.fields)
        ex.bytesOut += Int64(out.readableBytes)
        ex.responseStarted = true
        ex.phase = .streamingResponse
        if noBody {
            context.write(wrapOutboundOut(out), promise: nil)
            wroteToClient = true
        } else {
            ex.pendingClientHead = out
        }
    }

    /// Writes the held-back response head, if any.
    private func writePendingHead(_ ex: Exchange) {
        if let h = ex.pendingClientHead.take() {
            context.write(wrapOutboundOut(h), promise: nil)
            wroteToClient = true
        }
    }

    /// Small body pieces are copied behind the head: a memcpy costs less than a pipeline write.
    static let coalesceLimit = 8 * 1024

    func upstreamBody(_ c: UpstreamConnection, _ body: ByteBuffer) {
        // An empty piece would become the last-chunk marker if re-chunked.
        guard let ex = exchange, ex.upstream === c, !ex.clientNoBody, body.readableBytes > 0 else { return }
        ex.lastUpstreamActivity = .now()
        ex.bytesOut += Int64(body.readableBytes)
        if var h = ex.pendingClientHead.take() {
            if h.readableBytes + body.readableBytes <= Self.coalesceLimit {
                // Still held back: the response's end (or the end of this read) sends it.
                var b = body
                if ex.clientChunked {
                    HTTP1Writer.writeChunkHeader(size: b.readableBytes, into: &h)
                    h.writeBuffer(&b)
                    h.writeStaticString("\r\n")
                } else {
                    h.writeBuffer(&b)
                }
                ex.pendingClientHead = h
                return
            }
            context.write(wrapOutboundOut(h), promise: nil)
        }
        if ex.clientChunked {
            var h = allocator.buffer(capacity: 16)
            HTTP1Writer.writeChunkHeader(size: body.readableBytes, into: &h)
            context.write(wrapOutboundOut(h), promise: nil)
            context.write(wrapOutboundOut(body), promise: nil)
            var crlf = allocator.buffer(capacity: 2)
            crlf.writeStaticString("\r\n")
            context.write(wrapOutboundOut(crlf), promise: nil)
        } else {
            context.write(wrapOutboundOut(body), promise: nil)
        }
        wroteToClient = true
        if !context.channel.isWritable {
            // Backpressure: stop reading the upstream until the client drains.
            context.flush()
            wroteToClient = false
            if !context.channel.isWritable { c.setAutoRead(false) }
        }
    }

    func upstreamEnd(_ c: UpstreamConnection) {
        guard let ex = exchange, ex.upstream === c else { return }
        // The upstream's read-complete will not reach us once the exchange is finished: send and
        // flush now. A small response (head, body, last chunk) is one buffer and one pipeline trip.
        if var h = ex.pendingClientHead.take() {
            if ex.clientChunked {
                h.writeStaticString("0\r\n\r\n")
                ex.bytesOut += 5
            }
            context.writeAndFlush(wrapOutboundOut(h), promise: nil)
            if h.capacity <= ScratchBuffers.maxCapacity { state.responseHeadBuffer = h }
        } else {
            if ex.clientChunked {
                var b = allocator.buffer(capacity: 5)
                b.writeStaticString("0\r\n\r\n")
                ex.bytesOut += 5
                context.write(wrapOutboundOut(b), promise: nil)
            }
            context.flush()
        }
        wroteToClient = false
        c.finish()
        c.setAutoRead(true)
        if ex.requestEnded, let pool = ex.pool, c.upstreamKeepAlive {
            state.upstreams.release(c, pool: pool)
        } else {
            c.close()
        }
        ex.upstream = nil
        finishExchange(ex, keepAlive: ex.keepAlive, log: true)
    }

    func upstreamFailed(_ c: UpstreamConnection, _ error: HTTP1ParseError) {
        guard let ex = exchange, ex.upstream === c else { return }
        ex.upstream = nil
        if !ex.responseStarted {
            respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 502, "upstream_bad_response", detail: error.detail))
        } else {
            ex.errorCategory = "upstream_bad_response"
            abort(ex)
        }
        flushPending()
    }

    func upstreamClosed(_ c: UpstreamConnection, receivedAny: Bool) {
        guard let ex = exchange, ex.upstream === c else { return }
        ex.upstream = nil
        if !ex.responseStarted {
            if ex.upstreamReused && !receivedAny && ex.retryable && ex.attempts < 2, let pool = ex.pool {
                // A stale pooled connection: retry once on a fresh one to the same endpoint.
                ex.runtime?.balancer.balancer.finished(ex.endpointIndex)
                let endpoint = ex.endpointIndex
                ex.endpointIndex = -1
                retryFresh(ex, pool, endpoint: endpoint)
                return
            }
            respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 502, "upstream_reset", detail: "the upstream closed the connection before responding"))
        } else {
            // The response started: the client must not mistake a cut response for a whole one.
            ex.errorCategory = "upstream_reset"
            abort(ex)
        }
        flushPending()
    }

    private func retryFresh(_ ex: Exchange, _ pool: PoolSpec, endpoint: Int) {
        ex.phase = .connecting
        ex.attempts += 1
        ex.endpointIndex = endpoint
        ex.runtime?.balancer.balancer.started(endpoint)
        let ep = pool.endpoints[endpoint]
        let connections = ex.runtime?.endpoints[endpoint] ?? state.upstreams.endpoint(ep.address)
        state.upstreams.connect(connections, ep, pool: pool).whenComplete { result in
            guard self.exchange === ex, !self.closed else {
                if case .success(let c) = result { c.close() }
                return
            }
            switch result {
            case .success(let c): self.attach(ex, c, reused: false)
            case .failure:
                self.respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 502, "upstream_connect_failed", detail: "retry to \(ep.address) failed"))
            }
            self.flushPending()
        }
    }

    func upstreamReadComplete(_ c: UpstreamConnection) {
        if let ex = exchange { writePendingHead(ex) }
        if wroteToClient {
            wroteToClient = false
            context.flush()
        }
    }

    func upstreamWritabilityChanged(_ c: UpstreamConnection, writable: Bool) {
        if writable { resumeReads() }
    }

    // MARK: endings

    /// Closes the client connection at once: used when a response that already started cannot be
    /// completed. With no final chunk or short of its Content-Length, the client sees the cut.
    private func abort(_ ex: Exchange) {
        logFailure(ex, ex.errorCategory.isEmpty ? "aborted" : ex.errorCategory, detail: "the response had started; the client connection is closed")
        writePendingHead(ex)
        if let up = ex.upstream { up.finish(); up.close(); ex.upstream = nil }
        finishExchange(ex, keepAlive: false, log: true)
        closed = true
        context.flush()
        context.close(promise: nil)
    }

    private func finishExchange(_ ex: Exchange, keepAlive: Bool, log: Bool) {
        guard ex.phase != .done else { return }
        ex.phase = .done
        if ex.upstreamHead.capacity > 0 {
            state.upstreamHeadBuffers.give(ex.upstreamHead)
            ex.upstreamHead = ByteBuffer()
        }
        if ex.endpointIndex >= 0 { ex.runtime?.balancer.balancer.finished(ex.endpointIndex) }
        if log && state.accessLog.enabled { writeAccessLog(ex) }
        // Nothing reads the request's header lines from here on: their arrays serve the next head.
        ex.ctx.withHead { state.headerSpares.keep(&$0.fields) }
        if ex.requestEnded || !keepAlive { if exchange === ex { exchange = nil } }
        idleSince = .now()
        if closed { return }
        if !keepAlive {
            closeAfterResponse = true
            let ctx = context!
            closed = true
            ctx.writeAndFlush(wrapOutboundOut(ctx.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                ctx.close(promise: nil)
            }
            wroteToClient = false
            return
        }
        resumeReads()
        if exchange == nil && inbox.readableBytes > 0 {
            // A pipelined request is waiting.
            context.eventLoop.execute {
                guard !self.closed else { return }
                self.process()
                self.flushPending()
            }
        }
    }

    private func writeAccessLog(_ ex: Exchange) {
        let c = ex.ctx
        let now = NIODeadline.now()
        var upstreamMicros: Int64 = -1
        if let s = ex.upstreamSentAt { upstreamMicros = ((ex.upstreamDoneAt ?? now) - s).nanoseconds / 1000 }
        state.accessLog.write(AccessLog.Entry(
            requestID: c.requestID, client: clientIPText, method: c.head.method.description, host: c.head.host,
            path: c.head.path, route: c.route?.id ?? "", pool: c.poolID ?? "", endpoint: c.endpoint ?? "",
            status: ex.status, bytesIn: ex.bodyBytes, bytesOut: ex.bytesOut,
            durationMicros: (now - ex.start).nanoseconds / 1000, upstreamMicros: upstreamMicros, error: ex.errorCategory,
            droppedHeaders: Int(c.head.droppedHeaders)))
    }

    /// One error-log line for a failure Prox answered itself (5xx) or a response cut short.
    private func logFailure(_ ex: Exchange, _ category: String, detail: String) {
        let c = ex.ctx
        state.logger.warning("\(category)", metadata: [
            "request_id": "\(c.requestID)", "route": "\(c.route?.id ?? "")", "pool": "\(c.poolID ?? "")",
            "endpoint": "\(c.endpoint ?? "")", "client": "\(clientIPText)",
            "detail": "\(detail)",
        ])
    }

    // MARK: timeouts and draining

    /// Called by the loop's sweep every 250 ms.
    func checkTimeouts(_ now: NIODeadline) {
        guard !closed else { return }
        let listener = listenerSpec(state.snapshot)
        guard let ex = exchange else {
            if let started = headStartedAt, inbox.readableBytes > 0 {
                if now - started > .milliseconds(listener.clientHeaderTimeout) {
                    malformed(HTTP1ParseError(status: 408, category: "client_header_timeout", detail: "the request head did not arrive in time"))
                }
            } else if now - idleSince > .milliseconds(listener.keepAliveIdleTimeout) {
                closed = true
                context.close(promise: nil)
            }
            return
        }
        if !ex.requestEnded && now - ex.lastClientActivity > .milliseconds(listener.clientBodyIdleTimeout) {
            if let up = ex.upstream { up.finish(); up.close(); ex.upstream = nil }
            if !ex.responseStarted {
                respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 408, "client_body_timeout"), forceClose: true)
            } else {
                ex.errorCategory = "client_body_timeout"
                abort(ex)
            }
            flushPending()
            return
        }
        guard let pool = ex.pool else { return }
        if ex.phase == .awaitingResponse, let sent = ex.requestSentAt, now - sent > .milliseconds(pool.responseHeaderTimeout) {
            if let up = ex.upstream { up.finish(); up.close(); ex.upstream = nil }
            respondLocal(ex, RequestFlow.errorResponse(ex.ctx, 504, "upstream_timeout",
                                                       detail: "no response head within \(pool.responseHeaderTimeout) ms"))
            flushPending()
        } else if ex.phase == .streamingResponse && now - ex.lastUpstreamActivity > .milliseconds(pool.bodyIdleTimeout) {
            ex.errorCategory = "upstream_body_timeout"
            abort(ex)
        }
    }

    /// Draining: an idle connection closes now; a busy one closes after its response.
    func drain() {
        guard !closed else { return }
        if exchange == nil {
            closed = true
            context.close(promise: nil)
        } else {
            closeAfterResponse = true
        }
    }
}
