// Starts a real Unleash server for the tests. Settings come from the environment so that
// tests/unleash_server.py can choose ports and the database.
const unleash = require('unleash-server');

unleash
  .start({
    db: {
      host: '127.0.0.1',
      port: Number(process.env.UNLEASH_DB_PORT),
      user: process.env.UNLEASH_DB_USER,
      password: '',
      database: process.env.UNLEASH_DB_NAME,
      ssl: false,
    },
    server: { port: Number(process.env.UNLEASH_PORT), host: '127.0.0.1' },
    authentication: {
      initApiTokens: [
        { type: 'admin', secret: process.env.UNLEASH_ADMIN_TOKEN, project: '*', environment: '*', tokenName: 'admin' },
        { type: 'client', secret: process.env.UNLEASH_CLIENT_TOKEN, project: '*', environment: 'production', tokenName: 'client' },
      ],
    },
    logLevel: 'warn',
  })
  .then(() => console.log('unleash started'))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
