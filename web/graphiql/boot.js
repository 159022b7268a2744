// Starts GraphiQL on the gateway's own files: queries and mutations over HTTP
// at /graphql, subscriptions over WebSocket at /graphql/ws (graphql-ws, the
// graphql-transport-ws protocol), both with the Authorization header of the
// headers editor. The development token, when the gateway has one, comes
// fresh from /ui/settings on every load; it is never stored by the page.
'use strict';

(function () {
  const SETTINGS_PATH = '/ui/settings';

  // GraphiQL's menus and dialogs add a <style> element (a scroll lock); it
  // carries this nonce, the one the page's policy allows styles with.
  const script = document.currentScript;
  if (script && script.nonce) window.__webpack_nonce__ = script.nonce;
  const root = document.getElementById('graphiql');

  const DEFAULT_QUERY = `# Block an IP, then watch it: run "watch", then "invoke" in another tab.
mutation invoke {
  invokeAction(input: {
    name: "blockIp"
    actionReason: "seen in a phishing campaign"
    parameters: [{ name: "ip", value: "203.0.113.7" }]
  }) { id status }
}

query list {
  actions(first: 10) {
    totalCount
    nodes { id name status parameters { name value } lastActionDateTime }
  }
  actionCounts { status count }
}

subscription watch {
  actionStatusChanged { cursor status previousStatus action { id name } }
}
`;

  function fail(message) {
    root.className = 'failed';
    root.textContent = message;
  }

  function websocketUrl(path) {
    const url = new URL(path, window.location.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
  }

  // The Authorization header among GraphiQL's headers, whatever its case.
  function authorizationOf(headers) {
    for (const [name, value] of Object.entries(headers || {})) {
      if (name.toLowerCase() === 'authorization' && typeof value === 'string') return value;
    }
    return null;
  }

  function start(settings) {
    const httpUrl = new URL(settings.graphqlPath, window.location.origin).toString();
    const wsUrl = websocketUrl(settings.websocketPath);
    const devAuthorization = settings.devToken ? `Bearer ${settings.devToken}` : null;

    // One WebSocket client for the Authorization header in use: the token
    // travels in connection_init, so a new header means a new connection.
    let socket = null;
    let socketAuthorization = null;
    function wsClientFor(authorization) {
      if (socket === null || socketAuthorization !== authorization) {
        if (socket !== null) socket.dispose();
        socketAuthorization = authorization;
        socket = graphqlWs.createClient({
          url: wsUrl,
          lazy: true,
          retryAttempts: 3,
          connectionParams: authorization ? { Authorization: authorization } : {},
        });
      }
      return socket;
    }

    // GraphiQL's own fetcher tells subscriptions from the rest by parsing
    // the document; it is made per call so the WebSocket follows the header.
    // The development token is also the default header: GraphiQL may ask
    // for the schema before its headers editor is read.
    function fetcher(params, options) {
      const authorization = authorizationOf(options && options.headers) || devAuthorization;
      return GraphiQL.createFetcher({
        url: httpUrl,
        headers: authorization ? { Authorization: authorization } : {},
        wsClient: wsClientFor(authorization),
      })(params, options);
    }

    const headers = { Authorization: devAuthorization || 'Bearer <paste a token>' };
    const logo = React.createElement(
      GraphiQL.Logo,
      null,
      React.createElement('span', { className: 'actiongate-links' }, [
        React.createElement('span', { key: 'name' }, 'actiongate'),
        React.createElement('a', { key: 'dashboard', href: '/dashboard' }, 'Dashboard'),
      ]),
    );
    root.className = '';
    ReactDOM.createRoot(root).render(
      React.createElement(
        GraphiQL,
        {
          fetcher,
          defaultQuery: DEFAULT_QUERY,
          defaultHeaders: JSON.stringify(headers, null, 2),
          // Tokens stay out of localStorage; a reload brings a fresh one.
          shouldPersistHeaders: false,
          defaultEditorToolsVisibility: 'headers',
        },
        logo,
      ),
    );
  }

  if (typeof GraphiQL === 'undefined' || typeof React === 'undefined' || typeof graphqlWs === 'undefined') {
    fail('GraphiQL could not load its scripts from the gateway.');
    return;
  }
  fetch(SETTINGS_PATH, { headers: { Accept: 'application/json' }, cache: 'no-store' })
    .then((response) => {
      if (!response.ok) throw new Error(`${SETTINGS_PATH} answered ${response.status}`);
      return response.json();
    })
    .then(start, (err) => fail(`GraphiQL could not read its settings: ${err.message}`));
})();
