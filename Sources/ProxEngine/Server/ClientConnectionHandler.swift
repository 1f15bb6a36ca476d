import NIOCore
import ProxCore

/// The handler at the end of a client connection's pipeline: a translator. It frames requests
/// with the strict HTTP/1 parser, turns channel and upstream events into events of its
/// `ExchangeStateMachine`, and carries out the actions the machine returns (writes, upstream
/// dispatch, closes). The decisions (keep-alive, failures and their statuses, answer or abort,
/// retry, timeouts) are the machine's; the I/O and its hot-path economies are here.
///
/// One request is handled at a time; pipelined requests wait in `inbox` until the response
/// before them is complete, so responses keep their order. Everything runs on the connection's
/// event loop.
final class ClientConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias Machine = ExchangeStateMachine

    let state: LoopState
    /// The loop's upstream dispatch, kept here: reaching it through `state` costs a retain.
    private let dispatch: UpstreamDispatch
    let listenerIndex: Int
    let client: IPAddress
    let clientPort: Int
    let clientIPText: String
    /// `https` on a TLS listener: fixed when the listener bound, as its pipeline is.
    let scheme: String
    /// The client certificate the TLS handshake verified (a listener with `client_auth`): set
    /// once, before the first request, from the TLS handler's user event.
    private var tlsClient: TLSClientIdentity?
    /// The connection's I/O (`ConnectionIO`): the channel context on SwiftNIO, the socket on the
    /// io_uring engine. Set in `attach`, cleared when the connection goes: the I/O holds this
    /// handler strongly, so keeping it past removal is a cycle that leaks the handler, its I/O and
    /// everything they hold, for every closed connection (issue 6).
    private var io: (any ConnectionIO)!
    /// The channel context on SwiftNIO (nil on io_uring): a WebSocket tunnel takes the channel.
    private var nio: ChannelHandlerContext?
    /// The channel's allocator, fetched once: reaching it through the channel costs retains.
    private var allocator = ByteBufferAllocator()
    private var parser: HTTP1RequestParser
    private var inbox = ByteBuffer()
    /// The lifecycle of the current request (stored inline: mutated in place, never copied).
    private var machine: Machine
    private(set) var exchange: Exchange?
    /// The last finished exchange, cleared, kept for the next request on this connection (a new
    /// exchange and context cost two allocations and their teardown). Given back once the
    /// connection has been idle for `keepSpareWhileIdle`, so an idle keep-alive connection
    /// holds none for long.
    private(set) var spare: Exchange?
    /// Set when the connection's first exchange finished. Only a connection that came back for a
    /// second request keeps its finished exchanges: one that makes a single request, then idles
    /// or closes, pays nothing for the reuse and holds nothing.
    private var servedOne = false
    // Read pausing: `read` is held back while paused, so the kernel pushes back on the peer.
    private var readsPaused = false
    private var readPending = false
    private var wroteToUpstream = false
    private var wroteToClient = false
    /// Set while `process` frames bytes received. A dispatch the chain decides on then waits in
    /// `heldDispatch` until the end of the read (`channelReadComplete`), so body that came with
    /// the head meets the request-body phase (and may be refused) before any upstream is contacted.
    private var framing = false
    private var heldDispatch: (attempt: Int, sendContinue: Bool)?
    private var serverName: String { state.snapshot.settings.serverName }
    /// How long a connection idle between requests keeps its finished exchange for the next
    /// (checked at the 250 ms timeout sweep).
    static let keepSpareWhileIdle = TimeAmount.milliseconds(250)
    /// Bytes of later pipelined requests held while one is served; beyond this, reading pauses.
    static let maxBufferedPipeline = 64 * 1024

    init(state: LoopState, listener: ListenerSpec, client: IPAddress, clientPort: Int) {
        self.state = state
        self.dispatch = state.dispatch
        self.listenerIndex = listener.index
        self.client = client
        self.clientPort = clientPort
        self.clientIPText = client.description
        self.scheme = listener.scheme
        self.parser = HTTP1RequestParser(limits: HTTP1Limits(listener: listener))
        self.machine = Machine(now: state.now())
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        nio = context
        attach(io: context, allocator: context.channel.allocator)
        state.track(context, .channelContext)
        state.track(context.channel as AnyObject, .channel)
    }

    // The I/O calls of the hot path: straight to SwiftNIO's context when there is one (a direct
    // call; through the existential each costs a witness-table call, ~240 instructions a request
    // in all), else through `io`.
    @inline(__always) private func send(_ b: ByteBuffer) {
        if let c = nio { c.write(NIOAny(b), promise: nil) } else { io.send(b) }
    }

    @inline(__always) private func sendAndFlush(_ b: ByteBuffer) {
        if let c = nio { c.writeAndFlush(NIOAny(b), promise: nil) } else { io.sendAndFlush(b) }
    }

    @inline(__always) private func flushClient() {
        if let c = nio { c.flush() } else { io.flush() }
    }

    @inline(__always) private func readClient() {
        if let c = nio { c.read() } else { io.read() }
    }

    /// The connection is open on `io`: the handler serves it from now on.
    func attach(io: any ConnectionIO, allocator: ByteBufferAllocator) {
        self.io = io
        self.allocator = allocator
        state.connections[ObjectIdentifier(self)] = self
        state.track(self, .clientHandler)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if machine.isTunnel {
            // A 101 made the connection a tunnel: the relay has it now. The exchange is kept
            // until the tunnel ends (`tunnelEnded`), to be logged.
            state.connections[ObjectIdentifier(self)] = nil
            spare = nil
            inbox = ByteBuffer()
            io = nil
            nio = nil
            return
        }
        detach()
    }

    /// After removal only late callbacks can reach this handler, and they find it closed.
    func detach() {
        _ = machine.clientClosed()
        state.connections[ObjectIdentifier(self)] = nil
        exchange = nil
        spare = nil
        inbox = ByteBuffer()
        io = nil
        nio = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionClosed()
        context.fireChannelInactive()
    }

    /// The client connection closed (the peer, an error, or Prox).
    func connectionClosed() {
        state.connections[ObjectIdentifier(self)] = nil
        let action = machine.clientClosed()
        if let ex = exchange { perform(action, ex) }
        exchange = nil
        spare = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received(unwrapInboundIn(data))
    }

    /// Bytes from the client.
    /// Consuming: the buffer becomes the inbox without a retain of its own (the caller's copy is
    /// handed over).
    func received(_ data: consuming ByteBuffer) {
        if inbox.readableBytes == 0 {
            inbox = data
        } else {
            var buf = data
            inbox.writeBuffer(&buf)
        }
        machine.clientBytesArrived(now: state.now())
        process()
    }

    func channelReadComplete(context: ChannelHandlerContext) { readComplete() }

    /// The end of one read event (a batch of `received`): what the reads produced goes out.
    func readComplete() {
        if heldDispatch != nil { startHeldDispatch() }
        flushPending()
    }

    private func flushPending() {
        if wroteToUpstream {
            wroteToUpstream = false
            exchange?.upstream?.flush()
        }
        if wroteToClient {
            wroteToClient = false
            flushClient()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    /// The client's side drained, or filled up.
    func writabilityChanged() {
        // The client drained: let the upstream send again.
        if io.isWritable, let up = exchange?.upstream { up.setAutoRead(true) }
    }

    /// The io_uring engine is ready to read more: it may, unless reading is paused. (SwiftNIO
    /// reads on its own; pausing turns its `autoRead` off. An outbound `read` here would put
    /// this handler in the path of every read SwiftNIO asks for: about 200 instructions a
    /// request, callgrind.)
    func requestRead() {
        if readsPaused { readPending = true; return }
        readClient()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Only TLS connections of a listener with `client_auth` send it, once.
        if let id = event as? TLSClientIdentity { tlsClient = id }
        context.fireUserInboundEventTriggered(event)
    }

    private func pauseReads() {
        guard !readsPaused else { return }
        readsPaused = true
        if let c = nio { Self.setAutoRead(c, false) }
    }

    private func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        if let c = nio {
            Self.setAutoRead(c, true)
            return
        }
        if readPending {
            readPending = false
            readClient()
        }
    }

    /// SwiftNIO's reading on or off, at once (on the loop, without a future).
    private static func setAutoRead(_ c: ChannelHandlerContext, _ on: Bool) {
        if let options = c.channel.syncOptions {
            try? options.setOption(ChannelOptions.autoRead, value: on)
        } else {
            c.setReading(on)
        }
    }

    // MARK: framing

    /// Feeds buffered bytes to the parser until it needs more, or a request is being served
    /// whose body has been fully read (the next pipelined request waits its turn).
    private func process() {
        state.headerSpares.lend(to: &parser)
        framing = true
        while !machine.isClosed {
            // While a request is served, its body is read; the next pipelined request waits.
            if machine.isRequestBodyDone { break }
            guard var ev = parser.next(&inbox) else { break }
            switch ev {
            case .head(let head):
                // Drop the event's reference so the context owns the head alone: its arrays are
                // then edited in place, not copied on first write.
                ev = .end
                startRequest(head)
            case .body(let body):
                requestBody(body)
            case .end:
                requestEnd()
            case .error(let e):
                framing = false
                heldDispatch = nil
                if exchange == nil { bareRequestLine = parser.failedRequestLine(in: inbox) }
                perform(machine.malformedRequest(status: e.status), exchange, detail: e.detail, category: e.category)
                return
            }
        }
        framing = false
        if exchange != nil && inbox.readableBytes > Self.maxBufferedPipeline { pauseReads() }
        // Let go of a consumed read buffer now, not at the next read: SwiftNIO reuses its receive
        // buffer only when nothing else holds it, and otherwise keeps a second one per connection.
        if inbox.readableBytes == 0 { inbox = state.emptyBuffer }
    }

    private func listenerSpec(_ s: Snapshot) -> ListenerSpec {
        listenerIndex < s.listeners.count ? s.listeners[listenerIndex] : s.listeners[0]
    }

    // MARK: requests

    private func startRequest(_ head: consuming RequestHead) {
        let info = Machine.RequestInfo(framing: head.framing, keepAlive: head.keepAlive, versionMinor: head.versionMinor,
                                       isHead: head.method == .head, idempotent: head.method.isIdempotent,
                                       expectContinue: head.expectContinue, upgradeRequested: head.upgradeWebSocket)
        let ex = makeExchange(head)
        exchange = ex
        machine.requestHead(info, draining: state.draining, now: ex.start)
        carryOut(ex, RequestFlow.begin(ex.ctx))
    }

    private func makeExchange(_ head: consuming RequestHead) -> Exchange {
        // The one snapshot read for this request.
        let snapshot = state.snapshot
        // The kept exchange, if nothing took hold of it since: a callback of its request that
        // still holds it would take the next request for its own (`exchange === ex`).
        if isKnownUniquelyReferenced(&spare) {
            let ex = spare.take().unsafelyUnwrapped
            ex.begin(head: head, snapshot: snapshot, listener: listenerSpec(snapshot), now: state.now())
            return ex
        }
        spare = nil
        let ctx = RequestContext(head: head, snapshot: snapshot, listener: listenerSpec(snapshot), client: client,
                                 clientPort: clientPort, clientIPText: clientIPText, scheme: scheme, tlsClient: tlsClient,
                                 eventLoop: io.eventLoop)
        let ex = Exchange(ctx: ctx, now: state.now())
        state.track(ex, .exchange)
        state.track(ctx, .requestContext)
        return ex
    }

    /// Feeds the chain's outcome to the machine.
    private func carryOut(_ ex: Exchange, _ step: FlowStep) {
        guard exchange === ex else { return }
        switch step {
        case .respond(let r):
            perform(machine.flowStep(.respond), ex, local: r)
        case .proxy(let pool):
            ex.pool = pool
            // Body that arrived while the chain ran meets the request-body phase now, before any
            // upstream is contacted.
            for piece in ex.pending {
                if let r = bodyRefusal(ex, piece) { return refuseBody(ex, r) }
            }
            // A WebSocket handshake: the route decides whether it goes upstream as one. A request
            // that is not one pays this check.
            var outcome = Machine.FlowOutcome.proxy
            if machine.request.upgradeRequested, RequestFlow.forwardsUpgrade(ex.ctx) { outcome = .proxyUpgrade }
            switch machine.flowStep(outcome) {
            case .dispatch(let attempt, let sendContinue):
                if framing {
                    heldDispatch = (attempt, sendContinue)
                } else {
                    startProxy(ex, pool, attempt: attempt, sendContinue: sendContinue)
                }
            case let action:
                perform(action, ex)
            }
        case .readBody(let upTo):
            ex.bodyWanted = upTo
            switch machine.flowStep(.readBody(upTo: upTo)) {
            case .bodyReady:
                bodyReady(ex)
            case .awaitBody(let sendContinue):
                if sendContinue { writeContinue() }
            case let action:
                perform(action, ex)
            }
        case .suspend(let future):
            _ = machine.flowStep(.suspend)
            // Strong captures here and below: a weak reference would give the handler a side
            // table, which slows every retain and release of it (measured with perf).
            future.hop(to: io.eventLoop).assumeIsolated().whenComplete { result in
                guard self.exchange === ex else { return }
                switch result {
                case .success(let v): self.carryOut(ex, RequestFlow.resume(ex.ctx, with: v))
                case .failure(let err): self.perform(self.machine.flowStep(.failed), ex, detail: "\(err)")
                }
                self.flushPending()
            }
        }
    }

    /// The dispatch held while the bytes received were framed, unless the exchange ended
    /// meanwhile (its body refused, or malformed).
    private func startHeldDispatch() {
        guard let held = heldDispatch else { return }
        heldDispatch = nil
        guard let ex = exchange, let pool = ex.pool, case .connecting(let a) = machine.state, a == held.attempt,
              ex.upstream == nil else { return }
        startProxy(ex, pool, attempt: held.attempt, sendContinue: held.sendContinue)
    }

    /// Runs the request-body phase over one piece, for the stages that ran: a stage's refusal.
    @inline(__always)
    private func bodyRefusal(_ ex: Exchange, _ body: ByteBuffer) -> LocalResponse? {
        guard phases(ex).contains(.requestBody), let route = ex.ctx.route,
              case .respond(let r) = route.chain.runRequestBody(ex.ctx, body, ranCount: ex.ctx.stagesRun) else { return nil }
        return r
    }

    /// A stage refused the body: its answer, or a cut if the response had started.
    private func refuseBody(_ ex: Exchange, _ r: LocalResponse) {
        perform(machine.requestBodyRefused(status: r.status), ex, local: r, category: r.category.isEmpty ? nil : r.category)
    }

    private func requestBody(_ body: ByteBuffer) {
        guard let ex = exchange else { return }
        // While the chain decides, the piece is only held: the body phase sees it once the chain
        // has decided to proxy (`carryOut`), so every stage sees every piece, after its head.
        if !machine.chainRunning, let r = bodyRefusal(ex, body) { return refuseBody(ex, r) }
        switch machine.requestBodyPart(bytes: body.readableBytes) {
        case .bufferBody(let pause, let ready):
            ex.pending.append(body)
            if pause { pauseReads() }
            if ready { bodyReady(ex) }
        case .forwardBody(let chunked):
            guard let up = ex.upstream else { return }
            writeBodyUpstream(up, body, chunked: chunked)
            wroteToUpstream = true
            if !up.isWritable { pauseReads() }
        case .none:
            break
        case let action:
            perform(action, ex)
        }
    }

    private func requestEnd() {
        guard let ex = exchange else { return }
        switch machine.requestEnd(now: state.now()) {
        case .endUpstreamBody(let lastChunk):
            if lastChunk, let up = ex.upstream {
                writeLastChunkUpstream(up)
                wroteToUpstream = true
            }
        case .none:
            break  // the common case: a request without a body ended with its head
        case .bodyReady:
            bodyReady(ex)
        case let action:
            perform(action, ex)
        }
    }

    /// The body a stage asked for is held (`ex.pending`): give the chain its start, up to the
    /// amount asked, and go on. The pieces stay held for the upstream.
    private func bodyReady(_ ex: Exchange) {
        let wanted = ex.bodyWanted
        var held = 0
        for p in ex.pending { held += p.readableBytes }
        let body: ByteBuffer
        if ex.pending.count == 1 && held <= wanted {
            body = ex.pending[0]
        } else {
            var b = allocator.buffer(capacity: min(held, wanted))
            for p in ex.pending where b.readableBytes < wanted {
                b.writeImmutableBuffer(p.getSlice(at: p.readerIndex, length: min(p.readableBytes, wanted - b.readableBytes))!)
            }
            body = b
        }
        let complete = machine.requestEnded && held <= wanted
        carryOut(ex, RequestFlow.bodyRead(ex.ctx, body, complete: complete))
    }

    private func writeContinue() {
        var b = allocator.buffer(capacity: 25)
        b.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
        sendAndFlush(b)
    }

    private func writeBodyUpstream(_ up: UpstreamConnection, _ body: ByteBuffer, chunked: Bool) {
        guard body.readableBytes > 0 else { return }
        if chunked {
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

    private func writeLastChunkUpstream(_ up: UpstreamConnection) {
        var b = allocator.buffer(capacity: 5)
        b.writeStaticString("0\r\n\r\n")
        up.write(b)
    }

    // MARK: actions

    /// Carries out an action that needs no payload from the event site. `local`: the chain's
    /// answer for `.respond(failure: nil)`; `detail`: what the error log says about a failure;
    /// `category`: the parser's precise category for a malformed request.
    private func perform(_ action: Machine.Action, _ ex: Exchange?, local: LocalResponse? = nil, detail: String = "",
                         category: String? = nil) {
        switch action {
        case .none:
            break
        case .respond(let failure, let keepAlive):
            // No exchange: a bad or late head, answered on a bare one.
            let ex = ex ?? bareExchange()
            dropUpstream(ex)
            let r: LocalResponse
            if let failure, local == nil {
                r = RequestFlow.errorResponse(ex.ctx, failure.status, category ?? failure.category,
                                              detail: detail.isEmpty ? defaultDetail(failure, ex) : detail)
            } else {
                r = local ?? RequestFlow.errorResponse(ex.ctx, 500, "internal_error")
            }
            writeLocal(ex, r, keepAlive: keepAlive)
        case .abort(let failure):
            guard let ex else { return }
            ex.errorCategory = category ?? failure.category
            abort(ex)
        case .dispatch(let attempt, let sendContinue):
            guard let ex, let pool = ex.pool else { return }
            startProxy(ex, pool, attempt: attempt, sendContinue: sendContinue)
        case .retryFresh(let attempt):
            guard let ex, let pool = ex.pool else { return }
            connected(ex, attempt: attempt, pool: pool, dispatch.retryFresh(ex, pool))
        case .clientGone(let status499):
            guard let ex else { return }
            // Abandon the upstream (never reuse it) and log.
            dropUpstream(ex)
            ex.errorCategory = ExchangeFailure.clientClosed.category
            if status499 { ex.status = ExchangeFailure.clientClosed.status }
            finishExchange(ex, then: .nothing)
        case .close:
            io.close()
        case .sendUpstreamHead, .bufferBody, .awaitBody, .bodyReady, .forwardBody, .endUpstreamBody, .writeResponseHead, .writeResponseBody,
             .endResponse, .startTunnel, .finishTunnel:
            // Carried out where the event's payload is at hand; never reaches here.
            assertionFailure("\(action) outside its event")
        }
    }

    /// The detail logged for a failure the machine decided on its own.
    private func defaultDetail(_ f: ExchangeFailure, _ ex: Exchange) -> String {
        switch f {
        case .upstreamReset: return "the upstream closed the connection before responding"
        case .upstreamTimeout: return "no response head within \(ex.pool?.responseHeaderTimeout ?? 0) ms"
        case .clientHeaderTimeout: return "the request head did not arrive in time"
        case .drainTimeout: return "server.drain_timeout ran out while the request was in flight; Prox cut it"
        default: return ""
        }
    }

    private func bareExchange() -> Exchange {
        let ex = makeExchange(RequestHead.make(method: .get, target: "/", headers: []))
        exchange = ex
        bare = ObjectIdentifier(ex)
        return ex
    }

    /// The exchange made up for a request refused before its head was read (`bareExchange`):
    /// its access-log line gives what was read of the request line, and null for the rest.
    private var bare: ObjectIdentifier?
    private var bareRequestLine: (method: String, path: String)?

    /// Closes the exchange's upstream connection, if any: it is never reused after a failure.
    private func dropUpstream(_ ex: Exchange) {
        if let up = ex.upstream {
            up.finish()
            up.close()
            ex.upstream = nil
        }
    }

    private func writeLocal(_ ex: Exchange, _ r: LocalResponse, keepAlive: Bool) {
        let head = RequestFlow.responseHead(for: r, ex.ctx, serverName: serverName)
        ex.status = head.status
        if !r.category.isEmpty {
            ex.errorCategory = r.category
            if head.status >= 500 { logFailure(ex, r.category, detail: r.detail) }
        }
        var out = allocator.buffer(capacity: 256 + r.body.utf8.count)
        // Prox answers as the origin here: `Date` (RFC 9110 §6.6.1) and `Server`, unless the
        // route or a stage gave its own.
        var own = head.fields.contains(.date) ? [] : state.dateLine()
        if !head.fields.contains(.server) { own += ex.ctx.snapshot.settings.serverLine }
        HTTP1Writer.writeResponseHead(head, framing: head.framing, keepAlive: keepAlive,
                                      clientVersionMinor: ex.ctx.head.versionMinor, extraLines: own, into: &out)
        if ex.ctx.head.method != .head { out.writeString(r.body) }
        ex.bytesOut = Int64(out.readableBytes)
        send(out)
        wroteToClient = true
        finishExchange(ex, then: keepAlive ? .keepOpen : .closeAfterWrite)
    }

    private func startProxy(_ ex: Exchange, _ pool: PoolSpec, attempt: Int, sendContinue: Bool) {
        if sendContinue {
            var b = allocator.buffer(capacity: 25)
            b.writeStaticString("HTTP/1.1 100 Continue\r\n\r\n")
            send(b)
            wroteToClient = true
        }
        // `ex.ctx` at each use, no local: a local would still hold the context when a failed
        // dispatch finishes the exchange, and a context held elsewhere is not reused.
        // The connection's forwarding lines, kept with its exchange: an idle connection, whose
        // exchange is given back, holds none.
        if ex.forwarding == nil { ex.forwarding = RequestFlow.forwardingLines(clientIPText: clientIPText, scheme: scheme) }
        RequestFlow.prepareUpstreamHead(ex.ctx, serverName: serverName, forwarding: ex.forwarding)
        // The same mapping dry-run shows.
        let framing = RequestFlow.upstreamRequestFraming(machine.request.framing)
        // Room for the head with its forwarding lines: no regrowth.
        var head = state.upstreamHeadBuffers.take(allocator)
        let upgrade = machine.upgradeOffered
        ex.ctx.withHead { HTTP1Writer.writeRequestHead($0, framing: framing, upgrade: upgrade, into: &head) }
        ex.upstreamHead = head
        connected(ex, attempt: attempt, pool: pool, dispatch.dispatch(ex, pool))
    }

    /// Feeds what the dispatch found for `attempt` to the machine (now, or when connected).
    private func connected(_ ex: Exchange, attempt: Int, pool: PoolSpec, _ outcome: UpstreamDispatch.Outcome) {
        switch outcome {
        case .reused(let c):
            attach(ex, c, attempt: attempt, reused: true)
        case .failed(let reason, let detail):
            perform(machine.connectFailed(attempt: attempt, reason), ex, detail: detail)
        case .connecting(let future):
            future.whenComplete { result in
                guard self.exchange === ex, !self.machine.isClosed else {
                    if case .success(let c) = result { self.state.upstreams.release(c, pool: pool) }
                    return
                }
                switch result {
                case .success(let c):
                    self.attach(ex, c, attempt: attempt, reused: false)
                case .failure(let error):
                    let (reason, detail) = UpstreamDispatch.reason(error)
                    self.perform(self.machine.connectFailed(attempt: attempt, reason), ex, detail: detail)
                }
                self.flushPending()
            }
        }
    }

    private func attach(_ ex: Exchange, _ c: UpstreamConnection, attempt: Int, reused: Bool) {
        let now = state.now()
        guard case .sendUpstreamHead(let pendingBody, let lastChunk) = machine.upstreamConnected(attempt: attempt, reused: reused, now: now)
        else {
            // Not the attempt in flight any more: the connection goes back.
            if let pool = ex.pool { state.upstreams.release(c, pool: pool) } else { c.close() }
            return
        }
        ex.upstream = c
        if ex.ctx.isTracing {
            ex.ctx.record("upstream connect", looked: "pool \(ex.pool?.id ?? "?"), endpoint \(ex.ctx.endpoint ?? "?")",
                          decided: reused ? "reused a pooled connection" : "connected", why: "attempt \(attempt)")
        }
        c.begin(method: ex.ctx.head.method, attempt: attempt, upgrade: machine.upgradeOffered, delegate: self)
        if !pendingBody && !lastChunk {
            // The common case, a request without a body: the head goes in one pipeline trip.
            c.writeAndFlush(ex.upstreamHead)
            if !ex.pending.isEmpty { ex.pending = [] }
        } else {
            c.write(ex.upstreamHead)
            let chunked = machine.upstreamChunked
            for piece in ex.pending { writeBodyUpstream(c, piece, chunked: chunked) }
            ex.pending = []
            if lastChunk { writeLastChunkUpstream(c) }
            c.flush()
        }
        ex.upstreamSentAt = now
        if !c.isWritable { pauseReads() } else { resumeReads() }
    }

    // MARK: upstream events

    func upstreamInformational(_ c: UpstreamConnection, _ head: ResponseHead) {
        // Prox answered 100 Continue itself; other interim responses are not relayed yet.
    }

    func upstreamHead(_ c: UpstreamConnection, _ head: consuming ResponseHead) {
        guard let ex = exchange, ex.upstream === c else { return }
        let now = state.now()
        ex.upstreamDoneAt = now
        if let route = ex.ctx.route {
            ex.phases = route.chain.phasesUsed
            route.runResponse(ex.ctx, &head, ranCount: ex.ctx.stagesRun)
            if ex.ctx.isTracing {
                ex.ctx.record("upstream first byte", looked: "the upstream's response head", decided: "status \(head.status)",
                              why: "time to first byte from the request's arrival")
                LiveTrace.mark(ex.ctx, &head)
            }
            // The cache slot is offered the head as the client will get it; a route without one
            // pays this nil check.
            if route.hasCache, let cache = route.cache { cache.store(ex.ctx, head) }
        } else {
            ex.phases = []
        }
        switch machine.upstreamResponseHead(attempt: c.attempt, status: head.status, framing: head.framing, now: now) {
        case .writeResponseHead(let framing, let keepAlive, let noBody):
            ex.status = head.status
            var out = state.responseHeads.take() ?? allocator.buffer(capacity: 1024)  // head plus a small coalesced body
            out.clear()
            // The proxy's `Via` (RFC 9110 §7.6.3), made once per snapshot.
            if head.dated {
                HTTP1Writer.writeResponseHead(head, framing: framing, keepAlive: keepAlive,
                                              clientVersionMinor: machine.request.versionMinor,
                                              extraLines: head.versionMinor == 0 ? ex.ctx.snapshot.settings.viaLine10
                                                  : ex.ctx.snapshot.settings.viaLine11, into: &out)
            } else {
                writeUndatedResponseHead(ex, head, framing: framing, keepAlive: keepAlive, into: &out)
            }
            c.recycle(&head.fields)
            ex.bytesOut += Int64(out.readableBytes)
            if noBody {
                send(out)
                wroteToClient = true
            } else {
                ex.pendingClientHead = out
            }
        case .startTunnel:
            startTunnel(ex, c, head)
        case let action:
            perform(action, ex)
        }
    }

    /// A forwarded response whose upstream sent no `Date` gets the time Prox forwards it (RFC
    /// 9110 §6.6.1 asks this of a recipient with a clock), unless a stage set one. Off the common
    /// path: upstreams nearly always date their answers, and the parser noted whether this one did.
    @inline(never)
    private func writeUndatedResponseHead(_ ex: Exchange, _ head: ResponseHead, framing: BodyFraming, keepAlive: Bool,
                                          into out: inout ByteBuffer) {
        let via = head.versionMinor == 0 ? ex.ctx.snapshot.settings.viaLine10 : ex.ctx.snapshot.settings.viaLine11
        HTTP1Writer.writeResponseHead(head, framing: framing, keepAlive: keepAlive,
                                      clientVersionMinor: machine.request.versionMinor,
                                      extraLines: head.fields.contains(.date) ? via : state.dateLine() + via, into: &out)
    }

    // MARK: tunnel

    /// The upstream answered the upgrade with `101`: its head goes to the client, then both
    /// connections leave HTTP for a `ByteRelay` with the route's idle timeout. The bytes either
    /// side sent past its head (client frames after the handshake, upstream frames in the 101's
    /// read) go through the relay first. This handler leaves the pipeline; the exchange is logged
    /// when the tunnel ends.
    private func startTunnel(_ ex: Exchange, _ c: UpstreamConnection, _ head: consuming ResponseHead) {
        ex.status = 101
        var out = allocator.buffer(capacity: 256)
        HTTP1Writer.writeResponseHead(head, framing: .none, keepAlive: false, upgrade: true, into: &out)
        c.recycle(&head.fields)
        ex.bytesOut += Int64(out.readableBytes)
        let idle = TimeAmount.milliseconds(ex.ctx.route?.webSocket.idleTimeout ?? WebSocketPolicy.defaultIdleTimeout)
        #if os(Linux)
        if nio == nil, let socket = io as? URingSocket {
            return startURingTunnel(ex, c, socket, head: out, idle: idle)
        }
        #endif
        let context = nio!
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        wroteToClient = false
        ex.upstream = nil
        guard let detached = c.detachForTunnel() else {
            // The upstream closed as it answered: there is no tunnel to make.
            _ = machine.tunnelEnded()
            c.close()
            finishExchange(ex, then: .nothing)
            context.close(promise: nil)
            return
        }
        let fromClient = inbox
        inbox = state.emptyBuffer
        let relay = ByteRelay(eventLoop: context.eventLoop, idleTimeout: idle) { stats in
            // Strong captures: the relay lets go of this closure when it ends.
            c.tunnelClosed()
            guard case .finishTunnel = self.machine.tunnelEnded() else { return }
            ex.tunnel = stats
            self.finishExchange(ex, then: .nothing)
        }
        // Reading paused for HTTP is not the relay's: it paces its sides itself.
        if readsPaused {
            readsPaused = false
            Self.setAutoRead(context, true)
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        relay.start(client: channel, upstream: detached.channel, fromClient: fromClient, fromUpstream: detached.rest)
    }

    #if os(Linux)
    /// `startTunnel` on the io_uring engine: the sockets go to a `URingRelay`.
    private func startURingTunnel(_ ex: Exchange, _ c: UpstreamConnection, _ socket: URingSocket, head: ByteBuffer,
                                  idle: TimeAmount) {
        socket.sendAndFlush(head)
        wroteToClient = false
        ex.upstream = nil
        guard let detached = c.detachSocketForTunnel() else {
            // The upstream closed as it answered: there is no tunnel to make.
            _ = machine.tunnelEnded()
            c.close()
            finishExchange(ex, then: .nothing)
            socket.closeAfterSending()
            return
        }
        let fromClient = inbox
        inbox = state.emptyBuffer
        // The relay has the connection now, as `handlerRemoved` says for SwiftNIO.
        state.connections[ObjectIdentifier(self)] = nil
        spare = nil
        let relay = URingRelay(worker: socket.worker, idleTimeout: idle) { stats in
            c.tunnelClosed()
            guard case .finishTunnel = self.machine.tunnelEnded() else { return }
            ex.tunnel = stats
            self.finishExchange(ex, then: .nothing)
        }
        relay.start(client: socket, upstream: detached.socket, fromClient: fromClient, fromUpstream: detached.rest)
    }
    #endif

    /// Writes the held-back response head, if any.
    private func writePendingHead(_ ex: Exchange) {
        if let h = ex.pendingClientHead.take() {
            send(h)
            wroteToClient = true
        }
    }

    /// Small body pieces are copied behind the head: a memcpy costs less than a pipeline write.
    static let coalesceLimit = 8 * 1024

    func upstreamBody(_ c: UpstreamConnection, _ body: ByteBuffer) {
        guard let ex = exchange, ex.upstream === c,
              case .writeResponseBody(let chunked) = machine.upstreamResponseBodyPart(attempt: c.attempt, bytes: body.readableBytes,
                                                                                     now: state.now())
        else { return }
        ex.bytesOut += Int64(body.readableBytes)
        if phases(ex).contains(.responseBody), let route = ex.ctx.route {
            route.chain.runResponseBody(ex.ctx, body, ranCount: ex.ctx.stagesRun)
        }
        if var h = ex.pendingClientHead.take() {
            if h.readableBytes + body.readableBytes <= Self.coalesceLimit {
                // Still held back: the response's end (or the end of this read) sends it.
                if chunked {
                    HTTP1Writer.writeChunkHeader(size: body.readableBytes, into: &h)
                    h.appendBytes(of: body)
                    h.writeStaticString("\r\n")
                } else {
                    h.appendBytes(of: body)
                }
                ex.pendingClientHead = h
                return
            }
            send(h)
        }
        if chunked {
            var h = allocator.buffer(capacity: 16)
            HTTP1Writer.writeChunkHeader(size: body.readableBytes, into: &h)
            send(h)
            send(body)
            var crlf = allocator.buffer(capacity: 2)
            crlf.writeStaticString("\r\n")
            send(crlf)
        } else {
            send(body)
        }
        wroteToClient = true
        if !io.isWritable {
            // Backpressure: stop reading the upstream until the client drains.
            flushClient()
            wroteToClient = false
            if !io.isWritable { c.setAutoRead(false) }
        }
    }

    func upstreamEnd(_ c: UpstreamConnection) {
        guard let ex = exchange, ex.upstream === c else { return }
        let action = machine.upstreamResponseEnd(attempt: c.attempt, upstreamKeepAlive: c.upstreamKeepAlive)
        guard case .endResponse(let lastChunk, let release, let keepAlive) = action else {
            perform(action, ex)
            return
        }
        // The upstream's read-complete will not reach us once the exchange is finished: send and
        // flush now. A small response (head, body, last chunk) is one buffer and one pipeline trip.
        if var h = ex.pendingClientHead.take() {
            if lastChunk {
                h.writeStaticString("0\r\n\r\n")
                ex.bytesOut += 5
            }
            sendAndFlush(h)
            state.responseHeads.give(h)
        } else {
            if lastChunk {
                var b = allocator.buffer(capacity: 5)
                b.writeStaticString("0\r\n\r\n")
                ex.bytesOut += 5
                send(b)
            }
            flushClient()
        }
        wroteToClient = false
        c.finish()
        c.setAutoRead(true)
        if release, let pool = ex.pool {
            state.upstreams.release(c, pool: pool)
        } else {
            c.close()
        }
        ex.upstream = nil
        finishExchange(ex, then: keepAlive ? .keepOpen : .closeAfterWrite)
    }

    func upstreamFailed(_ c: UpstreamConnection, _ error: HTTP1ParseError) {
        guard let ex = exchange, ex.upstream === c else { return }
        ex.upstream = nil  // it closes itself
        perform(machine.upstreamParseFailed(attempt: c.attempt), ex, detail: error.detail)
        flushPending()
    }

    func upstreamClosed(_ c: UpstreamConnection, receivedAny: Bool) {
        guard let ex = exchange, ex.upstream === c else { return }
        ex.upstream = nil
        perform(machine.upstreamClosed(attempt: c.attempt, receivedAny: receivedAny, tlsFailed: c.tlsFailure != nil), ex,
                detail: c.tlsFailure.map { "\(c.endpoint.address): \($0)" } ?? "")
        flushPending()
    }

    func upstreamReadComplete(_ c: UpstreamConnection) {
        if let ex = exchange { writePendingHead(ex) }
        if wroteToClient {
            wroteToClient = false
            flushClient()
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
        dropUpstream(ex)
        finishExchange(ex, then: .nothing)
        flushClient()
        io.close()
    }

    /// What happens to the client connection once an exchange is finished.
    private enum After { case keepOpen, closeAfterWrite, nothing }

    private func finishExchange(_ ex: Exchange, then after: After) {
        guard !ex.finished else { return }
        ex.finished = true
        if ex.upstreamHead.capacity > 0 {
            state.upstreamHeadBuffers.give(ex.upstreamHead)
            ex.upstreamHead = state.emptyBuffer
        }
        if ex.endpointIndex >= 0 { ex.runtime?.balancer.balancer.finished(ex.endpointIndex) }
        if phases(ex).contains(.completion), let route = ex.ctx.route {
            route.chain.runCompleted(ex.ctx, summary(ex), ranCount: ex.ctx.stagesRun)
        }
        if state.accessLog.enabled { writeAccessLog(ex) }
        // Nothing reads the request's header lines from here on: their arrays serve the next head.
        ex.ctx.withHead { state.headerSpares.keep(&$0.fields) }
        if exchange === ex { exchange = nil }
        machine.exchangeFinished(now: state.now())
        switch after {
        case .nothing:
            return
        case .closeAfterWrite:
            io.closeAfterSending()
            wroteToClient = false
        case .keepOpen:
            keepForReuse(ex)
            resumeReads()
            if inbox.readableBytes > 0 {
                // A pipelined request is waiting.
                io.eventLoop.execute {
                    guard !self.machine.isClosed else { return }
                    self.process()
                    self.startHeldDispatch()
                    self.flushPending()
                }
            }
        }
    }

    /// Keeps a finished exchange, cleared, for the connection's next request, when the
    /// connection has served one before (`servedOne`) and nothing but the exchange holds its
    /// context (a stage, a callback or a test may have kept it; then it is left as it is). The
    /// exchange itself is checked when reused (`makeExchange`).
    private func keepForReuse(_ ex: Exchange) {
        guard servedOne else {
            servedOne = true
            return
        }
        guard ex.holdsContextAlone() else { return }
        ex.reset(emptyBuffer: state.emptyBuffer)
        spare = ex
    }

    /// The later phases the exchange's chain uses (read from the route once per exchange).
    @inline(__always)
    private func phases(_ ex: Exchange) -> StagePhases {
        if let p = ex.phases { return p }
        let p = ex.ctx.route?.chain.phasesUsed ?? []
        ex.phases = p
        return p
    }

    /// What the completion phase is told: the figures the access log gets.
    private func summary(_ ex: Exchange) -> ExchangeSummary {
        let now = state.now()
        var upstreamMicros: Int64 = -1
        if let s = ex.upstreamSentAt { upstreamMicros = ((ex.upstreamDoneAt ?? now) - s).nanoseconds / 1000 }
        return ExchangeSummary(status: ex.status, bytesIn: machine.bodyBytes, bytesOut: ex.bytesOut,
                               durationMicros: (now - ex.start).nanoseconds / 1000, upstreamMicros: upstreamMicros,
                               error: ex.errorCategory)
    }

    private func writeAccessLog(_ ex: Exchange) {
        let c = ex.ctx
        let now = state.now()
        var upstreamMicros: Int64 = -1
        if let s = ex.upstreamSentAt { upstreamMicros = ((ex.upstreamDoneAt ?? now) - s).nanoseconds / 1000 }
        let isBare = bare == ObjectIdentifier(ex)
        var bytesIn = machine.bodyBytes, bytesOut = ex.bytesOut
        if let t = ex.tunnel {
            // A tunnel's line: the bytes each way through it (and the 101 head out).
            bytesIn = t.clientToUpstream
            bytesOut += t.upstreamToClient
        }
        state.accessLog.write(AccessLog.Entry(
            requestID: c.requestID, client: clientIPText,
            method: isBare ? bareRequestLine?.method : c.head.method.description, host: isBare ? nil : c.head.host,
            path: isBare ? bareRequestLine?.path : c.head.path, route: c.route?.id ?? "", pool: c.poolID ?? "", endpoint: c.endpoint ?? "",
            status: ex.status, bytesIn: bytesIn, bytesOut: bytesOut,
            durationMicros: (now - ex.start).nanoseconds / 1000, upstreamMicros: upstreamMicros, error: ex.errorCategory,
            droppedHeaders: Int(c.head.droppedHeaders), upgrade: ex.tunnel == nil ? "" : "websocket",
            trace: c.trace.map { LiveTrace.json(c, $0, status: ex.status, durationMicros: (now - ex.start).nanoseconds / 1000) }))
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
        // A connection idle for longer than `keepSpareWhileIdle` gives its kept exchange back: an
        // idle keep-alive connection holds none, a busy one keeps it between requests.
        if spare != nil && now - machine.idleSince > Self.keepSpareWhileIdle { spare = nil }
        guard !machine.isClosed else { return }
        let listener = listenerSpec(state.snapshot)
        let pool = exchange?.pool
        // No pool: no upstream deadline applies (a year stands for none).
        let none: TimeAmountMillis = 365 * 24 * 3600 * 1000
        let limits = Machine.TimeoutLimits(clientHeader: listener.clientHeaderTimeout, clientBodyIdle: listener.clientBodyIdleTimeout,
                                           keepAliveIdle: listener.keepAliveIdleTimeout,
                                           responseHead: pool?.responseHeaderTimeout ?? none,
                                           upstreamBodyIdle: pool?.bodyIdleTimeout ?? none)
        guard let timeout = machine.expiredTimeout(now: now, partialHead: inbox.readableBytes > 0, limits: limits) else { return }
        perform(machine.timedOut(timeout), exchange)
        flushPending()
    }

    /// Closes the client connection now (the server is stopping).
    func closeNow() { io?.close() }

    /// Draining: an idle connection closes now; a busy one closes after its response.
    func drain() {
        perform(machine.drain(), exchange)
    }

    /// The drain's time ran out: the request in flight is cut, logged as `drain_timeout`.
    func cutByDrain() {
        perform(machine.drainTimedOut(), exchange)
        flushPending()
    }
}
