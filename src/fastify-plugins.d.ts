// Brings the request and instance decorations of the plugins app.ts registers into every file.
import "@fastify/multipart";
import "@fastify/swagger";
