-- Staging test data, loaded once when the staging database is initialised.
-- Replace these rows with data that matches your schema; never put production data here.
CREATE TABLE IF NOT EXISTS pets (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
) DEFAULT CHARSET = utf8mb4;

INSERT INTO pets (name) VALUES ('초코 (staging)'), ('보리 (staging)'), ('Mango (staging)');
